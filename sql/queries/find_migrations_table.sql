-- find_migrations_table
-- The schema_migrations table, or NULL before the first migration.
SELECT to_regclass('public.schema_migrations')
