-- shadow_days
-- The published days of a job in [start, end] that have shadow rows, per shadow version, with the rows and
-- the champion's run (a day's shadow rows always belong to its published run).
SELECT ds, model_name, model_version, count(*) AS rows, min(run_id::text) AS run_id
FROM shadow_predictions
WHERE job = :job AND ds BETWEEN :start AND :end AND (CAST(:version AS integer) IS NULL OR model_version = :version)
GROUP BY ds, model_name, model_version
ORDER BY model_version, ds
