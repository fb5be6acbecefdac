-- open_runs
-- Runs some process may still be working on, with the age of their last heartbeat.
SELECT run_id, job, ds, status, stage, owner_host, owner_pid, owner_task, owner_try, heartbeat_at,
       EXTRACT(EPOCH FROM now() - heartbeat_at) AS silent_seconds
FROM scoring_runs
WHERE finished_at IS NULL AND status IN ('running', 'published')
ORDER BY started_at
