-- get_run_status
SELECT status FROM scoring_runs WHERE run_id = CAST(:r AS uuid)
