-- A regression job's published day per band (label: NULL without bands): rows and the predicted values'
-- spread (score: the predicted value, a quantile model's median); a query `nightscore quickstart` suggests
SELECT label AS band, count(*), round(min(score)::numeric, 2) AS min, round(avg(score)::numeric, 2) AS avg, round((percentile_cont(0.5) WITHIN GROUP (ORDER BY score))::numeric, 2) AS median, round(max(score)::numeric, 2) AS max
FROM predictions WHERE job = :job AND ds = :ds GROUP BY label ORDER BY min(score)
