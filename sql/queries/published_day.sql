-- A published day's predictions, for the delayed-label evaluation (scores as JSON text: every class's
-- probability or every quantile; NULL for binary and single-value regression models)
SELECT entity_id, score, label, scores::text AS scores, model_name, model_version, run_id::text AS run_id
FROM predictions
WHERE job = :job AND ds = :ds
