-- lock_partition
-- The (job, ds) writers' row lock and the tables' locks a publish of the day needs.
-- DB-API (psycopg2) parameters, as in publish_swap: run with db.query_text on a cursor.
SELECT nightscore_lock_partition(%(job)s, CAST(%(ds)s AS date))
