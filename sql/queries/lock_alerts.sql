-- lock_alerts
-- One routing decision at a time per job and kind of alert (until the transaction ends).
SELECT pg_advisory_xact_lock(hashtext('nightscore_alert:' || :job || ':' || :kind))
