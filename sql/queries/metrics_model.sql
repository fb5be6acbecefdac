-- metrics_model
-- The version the job's alias names now, and its kind.
SELECT a.version, v.kind
FROM model_aliases a JOIN model_versions v ON v.model_name = a.model_name AND v.version = a.version
WHERE a.model_name = :name AND a.alias = :alias
