-- metrics_latest_evaluation
-- The job's latest evaluation by when it was computed, whichever day it concerns (delayed labels always
-- concern older days).
SELECT * FROM evaluations WHERE job = :job ORDER BY evaluated_at DESC, ds DESC LIMIT 1
