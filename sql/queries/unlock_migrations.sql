-- unlock_migrations
SELECT pg_advisory_unlock(:k)
