-- list_shadow_runs
-- The shadow models a run was asked for, in the order asked.
SELECT requested, position, job, ds, model_name, model_version, sha256, status, rows, seconds, error, note, shards
FROM shadow_runs
WHERE run_id = CAST(:run_id AS uuid)
ORDER BY position, requested
