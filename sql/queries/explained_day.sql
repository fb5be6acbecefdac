-- explained_day
-- A published day's rows and how many of them have reasons.
SELECT (SELECT count(*) FROM predictions WHERE job = :job AND ds = :ds) AS rows,
       (SELECT count(*) FROM prediction_reasons WHERE job = :job AND ds = :ds) AS explained
