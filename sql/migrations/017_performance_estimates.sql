-- Estimated performance before labels (issue #26): one row per job and day, the estimate of the published
-- day's AUC, precision, recall, accuracy and expected confusion counts from its scores alone (binary models;
-- a rerun of the day replaces it). Once the day is evaluated, performance_estimate_errors gives each
-- estimate beside the realized value and its error (estimated - realized):
--   SELECT ds, estimated_auc, realized_auc, auc_error FROM performance_estimate_errors WHERE job = 'churn' ORDER BY ds;
CREATE TABLE IF NOT EXISTS performance_estimates (
    job                        text             NOT NULL,
    ds                         date             NOT NULL,
    run_id                     uuid             NOT NULL,  -- the published run whose scores were estimated from
    model_name                 text             NOT NULL,
    model_version              integer          NOT NULL,
    rows                       bigint           NOT NULL,
    threshold                  double precision NOT NULL,  -- the spec's decision: score >= threshold
    auc                        double precision,          -- expected AUC when a row scored p is positive with probability p
    decision_precision         double precision,
    decision_recall            double precision,
    accuracy                   double precision,
    positive_rate              double precision,          -- expected share of positive outcomes
    expected_tp                double precision,
    expected_fp                double precision,
    expected_tn                double precision,
    expected_fn                double precision,
    holdout_auc                double precision,
    holdout_calibration_error  double precision,          -- the model's, on its holdout: the estimate's premise
    holdout_auc_gap            double precision,          -- the holdout's estimated AUC minus its realized (through the map if used)
    calibrated                 boolean,                   -- false: a holdout check beyond evaluation.estimate (NULL: none known)
    why                        text,                      -- which check, when not calibrated
    map_used                   boolean          NOT NULL,  -- the scores went through the holdout's calibration map
    auc_drop                   double precision,          -- holdout AUC - estimated AUC
    level                      text             NOT NULL CHECK (level IN ('ok', 'warn', 'alert')),
    seconds                    double precision NOT NULL,
    estimated_at               timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (job, ds)
);

-- each estimate against the evaluation of the same published run; realized accuracy from the evaluation's
-- recall, positives and decided positives
CREATE OR REPLACE VIEW performance_estimate_errors AS
SELECT e.job, e.ds, e.run_id, e.model_name, e.model_version, e.rows, v.rows_labelled,
       e.auc AS estimated_auc, v.auc AS realized_auc, e.auc - v.auc AS auc_error,
       e.decision_precision AS estimated_precision, v.decision_precision AS realized_precision,
       e.decision_precision - v.decision_precision AS precision_error,
       e.decision_recall AS estimated_recall, v.decision_recall AS realized_recall,
       e.decision_recall - v.decision_recall AS recall_error,
       e.accuracy AS estimated_accuracy, r.accuracy AS realized_accuracy, e.accuracy - r.accuracy AS accuracy_error,
       e.positive_rate AS estimated_positive_rate, r.positive_rate AS realized_positive_rate,
       e.positive_rate - r.positive_rate AS positive_rate_error,
       e.calibrated, e.map_used, e.level AS estimated_level, v.level AS realized_level, e.estimated_at, v.evaluated_at
FROM performance_estimates e
JOIN evaluations v ON v.job = e.job AND v.ds = e.ds AND v.run_id = e.run_id
CROSS JOIN LATERAL (
    SELECT CASE WHEN v.rows_labelled > 0 THEN v.positives::double precision / v.rows_labelled END AS positive_rate,
           CASE WHEN v.rows_labelled > 0 AND v.metrics ? 'decided_positive' AND v.decision_recall IS NOT NULL
                THEN (2 * round(v.decision_recall * v.positives) + v.rows_labelled - (v.metrics->>'decided_positive')::bigint - v.positives)
                     / v.rows_labelled::double precision
           END AS accuracy
) r;

-- the estimated alert is a kind of its own: a day's realized performance alert is not held back by it
DO $$
DECLARE
    c record;
    known text[];
BEGIN
    FOR c IN SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint
             WHERE conrelid = 'alert_log'::regclass AND contype = 'c' AND pg_get_constraintdef(oid) ~ '\mkind\M'
    LOOP
        CONTINUE WHEN c.def LIKE '%''performance_estimated''%';
        SELECT array_agg(m[1]) INTO known FROM regexp_matches(c.def, '''([a-z_]+)''', 'g') AS m;
        EXECUTE format('ALTER TABLE alert_log DROP CONSTRAINT %I', c.conname);
        EXECUTE format('ALTER TABLE alert_log ADD CONSTRAINT %I CHECK (kind = ANY (%L::text[]))', c.conname,
                       array_append(known, 'performance_estimated'));
    END LOOP;
END
$$;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'nightscore_owner') THEN
        ALTER TABLE performance_estimates OWNER TO nightscore_owner;
        ALTER VIEW performance_estimate_errors OWNER TO nightscore_owner;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'nightscore_writer') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON performance_estimates TO nightscore_writer;
        GRANT SELECT ON performance_estimate_errors TO nightscore_writer;
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'nightscore: performance_estimates privileges not set (%); run `nightscore init` as a user that may create roles', SQLERRM;
END
$$;
