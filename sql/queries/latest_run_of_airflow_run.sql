-- The latest scoring_runs row of an Airflow DAG run (what a failure or deadline alert reports).
SELECT * FROM scoring_runs WHERE airflow_run_id = :r ORDER BY started_at DESC LIMIT 1
