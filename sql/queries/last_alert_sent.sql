-- last_alert_sent
-- The latest alert of this job and kind that was sent (or would have been, with no channel), for the
-- same-day rule and the cooldown: its day, level and time.
SELECT ds, level, created_at
FROM alert_log
WHERE job = :job AND kind = :kind AND held_back IS NULL
ORDER BY created_at DESC
LIMIT 1
