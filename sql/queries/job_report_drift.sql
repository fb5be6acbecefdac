-- The drift metrics of the runs that published a job's days in [:first, :last] (the latest per day)
WITH published AS (
    SELECT DISTINCT ON (ds) ds, run_id
    FROM scoring_runs
    WHERE job = :job AND ds BETWEEN :first AND :last AND published_at IS NOT NULL AND NOT dry_run
    ORDER BY ds, published_at DESC
)
SELECT m.ds, m.feature, m.metric, m.value, m.level
FROM drift_metrics m JOIN published p USING (run_id)
ORDER BY m.ds, m.feature, m.metric
