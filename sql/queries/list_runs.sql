-- list_runs
SELECT run_id, job, ds, status, stage, dry_run, model_name, model_version,
       rows_extracted, rows_valid, rows_quarantined, rows_scored, rows_published,
       started_at, finished_at, published_at, error, airflow_run_id, owner_host, owner_pid
FROM scoring_runs
WHERE (CAST(:job AS text) IS NULL OR job = :job)
ORDER BY started_at DESC
LIMIT :limit
