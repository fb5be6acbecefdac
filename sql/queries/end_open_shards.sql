-- end_open_shards
-- The run has ended: its shards still pending or running end with it.
UPDATE run_shards SET status = :status, finished_at = now()
WHERE run_id = CAST(:r AS uuid) AND status IN ('pending', 'running')
