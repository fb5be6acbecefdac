INSERT INTO quarantined_rows (run_id, job, ds, entity_id, reasons, row_values)
VALUES (CAST(:run_id AS uuid), :job, :ds, :entity_id, CAST(:reasons AS jsonb), CAST(:row_values AS jsonb))
