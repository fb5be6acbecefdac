-- record_shadow_shard
-- One shard's outcome for one shadow model of the run (a retried shard's replaces its earlier attempt's).
UPDATE shadow_runs
SET shards = shards || jsonb_build_object(CAST(:shard AS text), CAST(:detail AS jsonb)), updated_at = now()
WHERE run_id = CAST(:run_id AS uuid) AND requested = :requested
