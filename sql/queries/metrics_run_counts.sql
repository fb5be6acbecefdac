-- metrics_run_counts
-- The job's finished runs (not dry runs) by status, and their rows: the metrics' counters.
SELECT status, count(*) AS runs, coalesce(sum(rows_scored), 0) AS scored, coalesce(sum(rows_quarantined), 0) AS quarantined,
       coalesce(sum(rows_published), 0) AS published
FROM scoring_runs
WHERE job = :job AND finished_at IS NOT NULL AND NOT dry_run
GROUP BY status
