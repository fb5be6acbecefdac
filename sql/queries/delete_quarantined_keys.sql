-- A retried shard's earlier quarantine of these keys, replaced by its own.
DELETE FROM quarantined_rows WHERE run_id = CAST(:r AS uuid) AND entity_id = ANY(:keys)
