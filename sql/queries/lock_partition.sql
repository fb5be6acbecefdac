-- Writers of the same (job, ds) queue here until the holder's transaction ends.
SELECT pg_advisory_xact_lock(hashtext('nightscore.publish'), hashtext(%(job)s || '/' || %(ds)s)),
       to_regclass(%(leaf)s) IS NOT NULL AS has_old
