-- claim_run
-- A process starts working on a run (a stage of it). A published run stays published: work after the swap
-- (monitoring, the manifest) never takes that back. Returns the run's status.
UPDATE scoring_runs
SET status = CASE WHEN status IN ('published', 'succeeded') THEN status ELSE 'running' END,
    error = CASE WHEN status IN ('published', 'succeeded') THEN error ELSE NULL END,
    finished_at = NULL,
    stage = :stage, owner_host = :owner_host, owner_pid = :owner_pid, owner_task = :owner_task, owner_try = :owner_try,
    heartbeat_at = now()
WHERE run_id = CAST(:run_id AS uuid)
RETURNING status
