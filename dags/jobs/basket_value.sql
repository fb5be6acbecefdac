-- One day of basket_value features. :ds is the partition date (DATE).
-- The key has two columns: the store a customer shops at (in the demo, derived from the customer id) and the
-- customer; predictions_basket_value shows both, as integer and bigint.
SELECT CAST(1 + customer_id % 50 AS integer) AS store_id, customer_id,
       tenure_months, monthly_spend, sessions_30d, support_tickets_90d,
       days_since_last_login, avg_session_minutes, discount_pct,
       plan, region
FROM demo.customer_activity
WHERE ds = :ds
