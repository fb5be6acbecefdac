-- list_run_drift_metrics
SELECT feature, metric, value, level FROM drift_metrics WHERE run_id = CAST(:r AS uuid) ORDER BY feature, metric
