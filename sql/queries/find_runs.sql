-- find_runs
-- Runs whose id starts with a prefix (at most 2: enough to tell one from many).
SELECT run_id FROM scoring_runs WHERE CAST(run_id AS text) LIKE :prefix || '%' ORDER BY started_at DESC LIMIT 2
