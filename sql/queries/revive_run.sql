-- revive_run
-- A retried shard takes its failed run back to running, unless another shard of the run has failed as well.
UPDATE scoring_runs
SET status = 'running', error = NULL, finished_at = NULL
WHERE run_id = CAST(:run_id AS uuid) AND status IN ('failed', 'interrupted')
  AND NOT EXISTS (SELECT FROM run_shards
                  WHERE run_id = CAST(:run_id AS uuid) AND shard <> :shard AND status IN ('failed', 'interrupted', 'abandoned'))
