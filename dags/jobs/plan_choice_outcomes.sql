-- Outcomes of the scored day :ds (DATE): the plan each customer scored that day chose at renewal.
-- In the demo the outcome is in the same table; in real life it is known only at the renewal.
SELECT customer_id, next_plan
FROM demo.customer_activity
WHERE ds = :ds AND next_plan IS NOT NULL
