-- metrics_latest_estimate
-- The job's latest estimate before labels by when it was computed, with the error of the latest estimate
-- whose day has been evaluated since (for the metrics).
SELECT e.*, (SELECT r.auc_error FROM performance_estimate_errors r WHERE r.job = e.job ORDER BY r.ds DESC LIMIT 1) AS latest_auc_error,
       (SELECT r.ds FROM performance_estimate_errors r WHERE r.job = e.job ORDER BY r.ds DESC LIMIT 1) AS latest_error_ds
FROM performance_estimates e
WHERE e.job = :job
ORDER BY e.estimated_at DESC, e.ds DESC
LIMIT 1
