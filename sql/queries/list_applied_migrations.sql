-- list_applied_migrations
SELECT version FROM schema_migrations
