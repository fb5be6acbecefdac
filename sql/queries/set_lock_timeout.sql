-- set_lock_timeout
-- For this transaction: the longest wait for one lock (an integer in milliseconds, or a text such as '5s').
-- DB-API (psycopg2) parameters, as in publish_swap: run with db.query_text on a cursor or exec_driver_sql.
SET LOCAL lock_timeout = %(timeout)s
