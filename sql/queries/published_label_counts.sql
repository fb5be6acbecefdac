-- A published day's predictions per label with their mean score (the query `nightscore quickstart` suggests)
SELECT label, count(*), round(avg(score)::numeric, 3) FROM predictions WHERE job = :job AND ds = :ds GROUP BY label
