-- list_performance_estimates
-- A job's estimates for a range of days, oldest first, each with the realized values and errors once the
-- same published run is evaluated (NULL before): the job report's estimate section.
SELECT e.*, r.rows_labelled, r.realized_auc, r.auc_error, r.realized_precision, r.precision_error,
       r.realized_recall, r.recall_error, r.realized_accuracy, r.accuracy_error, r.realized_level
FROM performance_estimates e
LEFT JOIN performance_estimate_errors r ON r.job = e.job AND r.ds = e.ds AND r.run_id = e.run_id
WHERE e.job = :job AND e.ds BETWEEN :first AND :last
ORDER BY e.ds
