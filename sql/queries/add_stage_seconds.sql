UPDATE scoring_runs
SET stage_seconds = stage_seconds || jsonb_build_object(CAST(:stage AS text), CAST(:seconds AS double precision))
WHERE run_id = CAST(:run_id AS uuid)
