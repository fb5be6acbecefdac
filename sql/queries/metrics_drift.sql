-- metrics_drift
-- The drift metrics of the job's latest drift judgement, whichever day it concerns: the run that most recently
-- finished monitoring a published day (a rerun or backfill of an older day is the latest judgement too).
WITH latest AS (
    SELECT run_id, ds, finished_at FROM scoring_runs
    WHERE job = :job AND published_at IS NOT NULL AND NOT dry_run AND drift IS NOT NULL AND finished_at IS NOT NULL
    ORDER BY finished_at DESC
    LIMIT 1
)
SELECT m.feature, m.metric, m.value, m.level, latest.ds, latest.finished_at
FROM drift_metrics m JOIN latest USING (run_id)
