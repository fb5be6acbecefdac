-- insert_shadow_run
-- A shadow model a run was asked for, as it resolved when the run began (pending until the run publishes).
INSERT INTO shadow_runs (run_id, requested, position, job, ds, model_name, model_version, sha256, status, error, note)
VALUES (CAST(:run_id AS uuid), :requested, :position, :job, :ds, :model_name, :model_version, :sha256, :status, :error, :note)
ON CONFLICT (run_id, requested) DO NOTHING
