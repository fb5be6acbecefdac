-- claim_shard
-- A process starts (or retries) one shard of a run. Returns the attempt number.
UPDATE run_shards
SET status = 'running', attempt = attempt + 1, stage = 'extract', error = NULL, finished_at = NULL,
    started_at = now(), owner_host = :owner_host, owner_pid = :owner_pid, owner_task = :owner_task
WHERE run_id = CAST(:run_id AS uuid) AND shard = :shard
RETURNING attempt
