-- alert_sent_for_day
-- Whether this job's alert of this kind, for this day and at least this level, was already sent.
SELECT EXISTS (
    SELECT FROM alert_log
    WHERE job = :job AND kind = :kind AND ds IS NOT DISTINCT FROM CAST(:ds AS date) AND held_back IS NULL
      AND array_position(ARRAY['info', 'warn', 'alert'], level) >= array_position(ARRAY['info', 'warn', 'alert'], CAST(:level AS text))
)
