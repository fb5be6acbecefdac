-- top_scored_entity
-- The published day's highest-scoring row's key (the quickstart's `nightscore explain` example).
SELECT entity_id FROM predictions WHERE job = :job AND ds = :ds ORDER BY score DESC, entity_id LIMIT 1
