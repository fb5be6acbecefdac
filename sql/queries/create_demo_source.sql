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
-- the pipeline's writer role reads the source (as it would any job's source tables)
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'nightscore_writer') THEN
        GRANT USAGE ON SCHEMA demo TO nightscore_writer;
        GRANT SELECT ON demo.customer_activity TO nightscore_writer;
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'nightscore: SELECT on demo.customer_activity not granted to nightscore_writer (%)', SQLERRM;
END
$$;
