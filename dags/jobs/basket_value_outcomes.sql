-- Outcomes of the scored day :ds (DATE): what each customer scored that day spent in the next 30 days.
-- In the demo the outcome is in the same table; in real life it is known only after the 30 days.
SELECT customer_id, basket_value
FROM demo.customer_activity
WHERE ds = :ds AND basket_value IS NOT NULL
