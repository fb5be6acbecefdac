-- list_loading_tables
-- The tables in nightscore_staging, with the comment that holds their creation time.
SELECT c.relname AS name, obj_description(c.oid, 'pg_class') AS comment
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'nightscore_staging' AND c.relkind = 'r'
ORDER BY c.relname
