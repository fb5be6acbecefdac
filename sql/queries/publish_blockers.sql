-- publish_blockers
-- The sessions holding a lock that a publish of the day needs (on predictions, on the day's partition, or a
-- writer's row in publish_locks): who they are and how long their transaction has been open.
SELECT a.pid, a.usename, a.state, a.application_name, a.client_addr,
       round(CAST(EXTRACT(EPOCH FROM now() - a.xact_start) AS numeric), 1) AS xact_seconds
FROM pg_stat_activity a
WHERE a.pid <> pg_backend_pid()
  AND a.pid IN (SELECT l.pid FROM pg_locks l
                WHERE l.granted AND l.relation IN (to_regclass('public.predictions'),
                                                   to_regclass('nightscore_partitions.' || quote_ident(:leaf)),
                                                   to_regclass('public.publish_locks')))
ORDER BY a.xact_start NULLS LAST
