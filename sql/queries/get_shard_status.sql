-- get_shard_status
SELECT status FROM run_shards WHERE run_id = CAST(:r AS uuid) AND shard = :s
