CREATE SCHEMA IF NOT EXISTS demo;
CREATE TABLE IF NOT EXISTS demo.customer_activity (
    ds                     date             NOT NULL,
    customer_id            bigint           NOT NULL,
    tenure_months          bigint           NOT NULL,
    monthly_spend          double precision NOT NULL,
    sessions_30d           bigint           NOT NULL,
    support_tickets_90d    bigint           NOT NULL,
    days_since_last_login  double precision,
    avg_session_minutes    double precision,
    discount_pct           double precision NOT NULL,
    plan                   text             NOT NULL,
    region                 text             NOT NULL,
    payment_method         text,
    churned                boolean          NOT NULL,
    PRIMARY KEY (ds, customer_id)
);
