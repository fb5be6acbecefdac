-- Drift per feature and metric (issue #15): one row per run, feature (or 'score') and metric, with its level
-- from the job spec's thresholds; an analyst follows a feature over time with
--   SELECT ds, value, level FROM drift_metrics WHERE job = 'churn' AND feature = 'monthly_spend' AND metric = 'psi' ORDER BY ds;
-- run_shards.drift_counts holds each shard's rows counted into the model's reference bins; the day sums them.

ALTER TABLE run_shards ADD COLUMN IF NOT EXISTS drift_counts jsonb;

CREATE TABLE IF NOT EXISTS drift_metrics (
    run_id   uuid    NOT NULL REFERENCES scoring_runs (run_id) ON DELETE CASCADE,
    job      text    NOT NULL,
    ds       date    NOT NULL,
    feature  text    NOT NULL,  -- a feature of the contract, or 'score'
    metric   text    NOT NULL CHECK (metric IN ('psi', 'ks', 'js', 'null_rate', 'out_of_range')),
    value    double precision,
    level    text    NOT NULL CHECK (level IN ('ok', 'warn', 'alert')),
    PRIMARY KEY (run_id, feature, metric)
);
CREATE INDEX IF NOT EXISTS drift_metrics_job_ds ON drift_metrics (job, ds);

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'nightscore_owner') THEN
        ALTER TABLE drift_metrics OWNER TO nightscore_owner;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'nightscore_writer') THEN
        GRANT SELECT, INSERT, DELETE ON drift_metrics TO nightscore_writer;
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'nightscore: drift_metrics privileges not set (%); run `nightscore init` as a user that may create roles', SQLERRM;
END
$$;
