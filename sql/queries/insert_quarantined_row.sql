INSERT INTO quarantined_rows (run_id, job, ds, entity_id, reasons)
VALUES (CAST(:run_id AS uuid), :job, :ds, :entity_id, CAST(:reasons AS jsonb))
