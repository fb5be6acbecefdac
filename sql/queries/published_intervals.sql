-- A quantile model's published day: the entities with the highest predicted median (score), their band
-- (label) and the interval their lowest and highest quantiles bound (scores: every quantile by its alpha)
SELECT entity_id, label AS band, round(score::numeric, 2) AS median, round((scores->>:low)::numeric, 2) AS low, round((scores->>:high)::numeric, 2) AS high
FROM predictions WHERE job = :job AND ds = :ds ORDER BY score DESC LIMIT 5
