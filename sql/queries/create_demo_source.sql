CREATE SCHEMA IF NOT EXISTS demo;
-- one row per customer and day: the features and the three demo jobs' outcomes (churned: churn;
-- basket_value: basket_value; next_plan: plan_choice)
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
    basket_value           double precision,  -- NULL only in days written before the column existed
    next_plan              text,              -- (nightscore demo-data writes those days again)
    PRIMARY KEY (ds, customer_id)
);
-- a table made before basket_value and next_plan existed gets them (at the end, where the generator puts
-- them); only its owner may alter it, so only when one is missing
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_attribute WHERE attrelid = 'demo.customer_activity'::regclass AND attname = 'basket_value' AND NOT attisdropped) THEN
        ALTER TABLE demo.customer_activity ADD COLUMN IF NOT EXISTS basket_value double precision;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_attribute WHERE attrelid = 'demo.customer_activity'::regclass AND attname = 'next_plan' AND NOT attisdropped) THEN
        ALTER TABLE demo.customer_activity ADD COLUMN IF NOT EXISTS next_plan text;
    END IF;
END
$$;
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
