-- list_run_shards
SELECT * FROM run_shards WHERE run_id = CAST(:r AS uuid) ORDER BY shard
