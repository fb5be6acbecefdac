-- release_run
-- The process stops working on the run (an Airflow task handing over to the next one).
UPDATE scoring_runs SET owner_pid = NULL, heartbeat_at = now()
WHERE run_id = CAST(:run_id AS uuid) AND owner_host = :owner_host AND owner_pid = :owner_pid
