-- find_database
-- Whether the server has a database of this name.
SELECT 1 FROM pg_database WHERE datname = :n
