-- Labelled plan_choice rows for the training window [:start, :end) (DATEs). ds splits train from holdout.
-- next_plan is a class name of decision.classes; a day written before the column existed has none
-- (`nightscore demo-data` writes it again).
SELECT ds, customer_id,
       tenure_months, monthly_spend, sessions_30d, support_tickets_90d,
       days_since_last_login, avg_session_minutes, discount_pct,
       plan, region, payment_method,
       next_plan
FROM demo.customer_activity
WHERE ds >= :start AND ds < :end AND next_plan IS NOT NULL
