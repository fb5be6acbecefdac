-- get_latest_evaluation
-- The evaluation of the job's latest evaluated day.
SELECT * FROM evaluations WHERE job = :job ORDER BY ds DESC LIMIT 1
