-- Delayed-label performance (issue #15): one row per job and day, the latest evaluation of the published day
-- (an evaluation again replaces it). Compare a model over time with
--   SELECT ds, model_version, auc, holdout->>'auc' AS holdout_auc, level FROM evaluations WHERE job = 'churn' ORDER BY ds;
CREATE TABLE IF NOT EXISTS evaluations (
    job                 text             NOT NULL,
    ds                  date             NOT NULL,
    run_id              uuid             NOT NULL,  -- the published run whose predictions were evaluated
    model_name          text             NOT NULL,
    model_version       integer          NOT NULL,
    rows_published      bigint           NOT NULL,
    rows_labelled       bigint           NOT NULL,  -- published rows the outcome query had a label for
    positives           bigint           NOT NULL,
    auc                 double precision,
    logloss             double precision,
    brier               double precision,
    decision_precision  double precision,          -- of the spec's decision (score >= threshold)
    decision_recall     double precision,
    calibration_error   double precision,          -- mean |mean score - outcome rate| over score deciles, weighted by rows
    calibration         jsonb            NOT NULL,  -- per score decile: rows, mean_score, outcome_rate
    holdout             jsonb            NOT NULL,  -- the model's holdout metrics, for comparison
    levels              jsonb            NOT NULL,  -- per compared metric: value and ok | warn | alert
    level               text             NOT NULL CHECK (level IN ('ok', 'warn', 'alert', 'insufficient')),
    evaluated_at        timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (job, ds)
);

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'nightscore_owner') THEN
        ALTER TABLE evaluations OWNER TO nightscore_owner;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'nightscore_writer') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON evaluations TO nightscore_writer;
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'nightscore: evaluations privileges not set (%); run `nightscore init` as a user that may create roles', SQLERRM;
END
$$;
