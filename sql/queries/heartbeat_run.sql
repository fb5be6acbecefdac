-- heartbeat_run
UPDATE scoring_runs SET heartbeat_at = now()
WHERE run_id = CAST(:run_id AS uuid) AND owner_host = :owner_host AND owner_pid = :owner_pid
