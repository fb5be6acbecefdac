-- drift_levels_before
-- The worst drift level of each of the job's published days in [:start, :ds] (the latest publish of each day).
SELECT DISTINCT ON (ds) ds, drift->>'level' AS level
FROM scoring_runs
WHERE job = :job AND published_at IS NOT NULL AND NOT dry_run AND ds BETWEEN CAST(:start AS date) AND CAST(:ds AS date)
ORDER BY ds, published_at DESC
