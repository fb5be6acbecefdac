-- insert_run
INSERT INTO scoring_runs (run_id, job, ds, status, dry_run, airflow_run_id, artifacts_uri,
                          stage, owner_host, owner_pid, owner_task, owner_try, heartbeat_at)
VALUES (CAST(:run_id AS uuid), :job, :ds, 'running', :dry_run, :airflow_run_id, :artifacts_uri,
        'begin', :owner_host, :owner_pid, :owner_task, :owner_try, now())
