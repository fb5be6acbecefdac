INSERT INTO scoring_runs (run_id, job, ds, status, dry_run, airflow_run_id, artifacts_uri)
VALUES (CAST(:run_id AS uuid), :job, :ds, 'running', :dry_run, :airflow_run_id, :artifacts_uri)
