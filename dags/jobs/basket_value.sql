-- One day of basket_value features. :ds is the partition date (DATE).
SELECT customer_id,
       tenure_months, monthly_spend, sessions_30d, support_tickets_90d,
       days_since_last_login, avg_session_minutes, discount_pct,
       plan, region
FROM demo.customer_activity
WHERE ds = :ds
