SELECT * FROM scoring_runs WHERE run_id = CAST(:run_id AS uuid)
