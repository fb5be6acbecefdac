-- published_scores
-- The scores of a job's published day (the estimate before labels of a day published earlier).
SELECT score FROM predictions WHERE job = :job AND ds = :ds
