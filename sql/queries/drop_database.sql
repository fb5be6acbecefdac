-- drop_database
-- The placeholder is filled by db.query_with_identifiers with the quoted database name, as in create_database.
-- FORCE: the sessions still connected to it are ended first (PostgreSQL 13+).
DROP DATABASE IF EXISTS {database} WITH (FORCE)
