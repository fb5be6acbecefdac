-- insert_schema_migration
-- Record a migration as applied, in the transaction that applied it.
INSERT INTO schema_migrations (version, name, sha256) VALUES (:v, :n, :s)
