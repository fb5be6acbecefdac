-- The job's latest finished run (not a dry run), for its metrics
SELECT status, finished_at, rows_extracted, rows_valid, rows_quarantined, rows_scored, rows_published, stage_seconds
FROM scoring_runs
WHERE job = :job AND finished_at IS NOT NULL AND NOT dry_run
ORDER BY finished_at DESC
LIMIT 1
