-- A run's most frequent quarantine reasons (a key refused for two reasons counts under each)
SELECT reason, count(*) AS rows
FROM quarantined_rows q, jsonb_array_elements_text(q.reasons) AS reason
WHERE q.run_id = CAST(:r AS uuid)
GROUP BY reason
ORDER BY rows DESC, reason
LIMIT :limit
