INSERT INTO drift_metrics (run_id, job, ds, feature, metric, value, level)
VALUES (CAST(:run_id AS uuid), :job, :ds, :feature, :metric, :value, :level)
