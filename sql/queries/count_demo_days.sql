-- count_demo_days
-- Rows per day of the demo source within a range of days, and how many of them lack an outcome added
-- after the table was first made (such a day was written before that column existed).
SELECT ds, count(*) AS n, count(*) FILTER (WHERE basket_value IS NULL OR next_plan IS NULL) AS incomplete
FROM demo.customer_activity
WHERE ds BETWEEN :a AND :b
GROUP BY ds
