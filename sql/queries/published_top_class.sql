-- A multiclass job's published day: the entities likeliest to be the class :cls (scores holds every class's
-- probability; label is the class chosen, score its probability); a query `nightscore quickstart` suggests
SELECT entity_id, label, round((scores->>:cls)::numeric, 3) AS probability
FROM predictions WHERE job = :job AND ds = :ds ORDER BY (scores->>:cls)::float8 DESC LIMIT 5
