-- count_demo_days
-- Rows per day of the demo source within a range of days.
SELECT ds, count(*) AS n FROM demo.customer_activity WHERE ds BETWEEN :a AND :b GROUP BY ds
