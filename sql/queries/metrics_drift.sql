-- The drift metrics of the run that published the job's latest published day
WITH latest AS (
    SELECT run_id FROM scoring_runs
    WHERE job = :job AND published_at IS NOT NULL AND NOT dry_run
    ORDER BY ds DESC, published_at DESC
    LIMIT 1
)
SELECT feature, metric, value, level FROM drift_metrics WHERE run_id = (SELECT run_id FROM latest)
