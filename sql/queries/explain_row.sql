-- explain_row
-- One published row and its reasons (NULL where the day's run did not explain it), of the same run.
SELECT p.entity_id, p.score, p.label, p.model_name, p.model_version, p.run_id, p.scored_at,
       r.explained_class, r.base_value, r.rest, r.reasons
FROM predictions p
LEFT JOIN prediction_reasons r ON r.job = p.job AND r.ds = p.ds AND r.entity_id = p.entity_id AND r.run_id = p.run_id
WHERE p.job = :job AND p.ds = :ds AND p.entity_id = :entity
