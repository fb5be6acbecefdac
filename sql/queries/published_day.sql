-- A published day's predictions, for the delayed-label evaluation
SELECT entity_id, score, label, model_name, model_version, run_id::text AS run_id
FROM predictions
WHERE job = :job AND ds = :ds
