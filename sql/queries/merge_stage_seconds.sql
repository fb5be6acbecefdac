-- merge_stage_seconds
-- Several stages' seconds (a JSON object) merged into the run's timings in one statement.
UPDATE scoring_runs SET stage_seconds = stage_seconds || CAST(:s AS jsonb) WHERE run_id = CAST(:r AS uuid)
