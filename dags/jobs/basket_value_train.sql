-- Labelled basket_value rows for the training window [:start, :end) (DATEs). ds splits train from holdout.
-- A day written before the basket_value column existed has no label: `nightscore demo-data` writes it again.
SELECT ds, customer_id,
       tenure_months, monthly_spend, sessions_30d, support_tickets_90d,
       days_since_last_login, avg_session_minutes, discount_pct,
       plan, region,
       basket_value
FROM demo.customer_activity
WHERE ds >= :start AND ds < :end AND basket_value IS NOT NULL
