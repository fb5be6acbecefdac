-- retryable_runs
-- Failed Airflow runs that a task retry may still take up (a retried shard or publish revives its run):
-- their loading tables and work folders are kept until the handover timeout has passed.
SELECT run_id FROM scoring_runs
WHERE status IN ('failed', 'interrupted') AND airflow_run_id IS NOT NULL
  AND finished_at > now() - make_interval(secs => :grace)
