-- latest_shadow_day
-- The latest published day of a job with shadow rows (of one version, or of any).
SELECT max(ds) FROM shadow_predictions
WHERE job = :job AND (CAST(:version AS integer) IS NULL OR model_version = :version)
