-- settle_shadow_run
-- A shadow model's outcome for the whole day, at publish: scored by every shard, or failed.
UPDATE shadow_runs
SET status = :status, rows = :rows, seconds = :seconds, error = :error, updated_at = now()
WHERE run_id = CAST(:run_id AS uuid) AND requested = :requested
