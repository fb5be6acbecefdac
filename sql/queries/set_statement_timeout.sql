-- set_statement_timeout
-- For this transaction: the longest one statement may run (an integer in milliseconds).
-- DB-API (psycopg2) parameters, as in publish_swap: run with db.query_text on a cursor.
SET LOCAL statement_timeout = %(timeout)s
