-- count_alerts
-- The job's alerts raised, by kind, level and whether they were sent (for the metrics' counters).
SELECT kind, level, (held_back IS NULL) AS sent, count(*) AS n
FROM alert_log
WHERE job = :job
GROUP BY kind, level, (held_back IS NULL)
