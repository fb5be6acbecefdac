-- list_migration_digests
-- The applied migrations with the sha256 of the file as it was applied.
SELECT version, sha256 FROM schema_migrations
