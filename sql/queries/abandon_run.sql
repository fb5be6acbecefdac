-- abandon_run
-- Mark a run whose process is gone, if it is still as the reaper saw it (no process claimed it since).
UPDATE scoring_runs
SET status = CASE WHEN status = 'running' THEN 'abandoned' ELSE status END,
    error = :error, finished_at = now(), owner_pid = NULL
WHERE run_id = CAST(:run_id AS uuid) AND finished_at IS NULL AND status IN ('running', 'published')
  AND owner_pid IS NOT DISTINCT FROM :owner_pid AND heartbeat_at IS NOT DISTINCT FROM :heartbeat_at
RETURNING status
