-- create_database
-- The placeholder is filled by db.query_with_identifiers with the quoted database name (an identifier,
-- which cannot be a bind parameter); nothing else is ever put in it.
CREATE DATABASE {database}
