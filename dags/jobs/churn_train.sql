-- Labelled churn rows for the training window [:start, :end) (DATEs). ds splits train from holdout.
SELECT ds, customer_id,
       tenure_months, monthly_spend, sessions_30d, support_tickets_90d,
       days_since_last_login, avg_session_minutes, discount_pct,
       plan, region, payment_method,
       churned
FROM demo.customer_activity
WHERE ds >= :start AND ds < :end
