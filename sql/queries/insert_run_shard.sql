-- insert_run_shard
-- One pending row per shard of a run (run with a list of parameter sets).
INSERT INTO run_shards (run_id, shard, shards) VALUES (CAST(:run_id AS uuid), :shard, :shards) ON CONFLICT DO NOTHING
