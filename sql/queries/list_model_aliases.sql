-- list_model_aliases
-- The aliases of one model (or, with a NULL name, of every model).
SELECT model_name, alias, version FROM model_aliases WHERE CAST(:n AS text) IS NULL OR model_name = :n
