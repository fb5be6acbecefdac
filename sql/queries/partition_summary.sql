SELECT count(*) AS rows, count(DISTINCT run_id) AS runs, min(model_version) AS model_version, max(scored_at) AS scored_at
FROM predictions
WHERE job = :job AND ds = :ds
