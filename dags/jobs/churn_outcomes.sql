-- Outcomes of the scored day :ds (DATE): did each customer scored that day cancel within 30 days?
-- In the demo the outcome is in the same table; in real life it is known only after the 30 days.
SELECT customer_id, churned
FROM demo.customer_activity
WHERE ds = :ds
