-- Outcomes of the scored day :ds (DATE): what each customer scored that day spent in the next 30 days, by
-- the job's key (store_id, customer_id). In the demo the outcome is in the same table; in real life it is
-- known only after the 30 days.
SELECT CAST(1 + customer_id % 50 AS integer) AS store_id, customer_id, basket_value
FROM demo.customer_activity
WHERE ds = :ds AND basket_value IS NOT NULL
