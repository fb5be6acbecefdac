-- published_days
-- A job's published days in [:first, :last] with the run that published each (the latest) and its model.
SELECT DISTINCT ON (ds) ds, run_id::text AS run_id, model_name, model_version
FROM scoring_runs
WHERE job = :job AND ds BETWEEN :first AND :last AND published_at IS NOT NULL AND NOT dry_run
ORDER BY ds, published_at DESC
