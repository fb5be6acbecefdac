-- ping_database
-- The cheapest statement: does the connection work.
SELECT 1
