-- compare_day
-- A published day's champion rows beside one shadow model's rows for the same entities (scores as JSON text).
SELECT p.entity_id,
       p.model_version AS champion_version,
       p.score         AS champion_score,
       p.label         AS champion_label,
       p.scores::text  AS champion_scores,
       s.score         AS shadow_score,
       s.label         AS shadow_label,
       s.scores::text  AS shadow_scores
FROM predictions p
JOIN shadow_predictions s ON s.job = p.job AND s.ds = p.ds AND s.entity_id = p.entity_id AND s.run_id = p.run_id
WHERE p.job = :job AND p.ds = :ds AND s.model_version = :version
ORDER BY p.entity_id
