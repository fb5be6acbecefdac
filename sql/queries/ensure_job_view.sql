-- ensure_job_view
-- Create or update predictions_<job> for the key's columns and types (a JSON list); true if it changed.
SELECT nightscore_job_view(:job, CAST(:columns AS jsonb))
