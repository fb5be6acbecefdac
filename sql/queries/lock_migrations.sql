-- lock_migrations
-- The cluster-wide advisory lock that one migrations runner holds at a time.
SELECT pg_advisory_lock(:k)
