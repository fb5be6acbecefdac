-- list_evaluations
-- A job's evaluations for a range of days, oldest first.
SELECT * FROM evaluations WHERE job = :j AND ds BETWEEN :a AND :b ORDER BY ds
