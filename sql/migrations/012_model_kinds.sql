-- Model kinds (issue #23): binary, multiclass and regression jobs, and models handed over as files.
--
-- * predictions: score was a probability (CHECK 0..1) and label the binary decision (NOT NULL). Now score is
--   the positive class's probability, the chosen class's probability, or a predicted value; label the
--   decision, the class, the band, or NULL; scores (jsonb) every class's probability or every quantile.
--   The range check moves to where the kind is known: each day's loading table carries it (its partition
--   keeps it once attached). Published rows stay as they are (no rewrite: a new nullable column is
--   catalog-only); the view gains the column, keeping its grants.
-- * model_versions: the model's kind and where it came from (origin: the file, its sha256, an MLflow run id,
--   who registered it, a note).
-- * evaluations: the kind and the kind's own metrics (multiclass log loss, accuracy, macro F1, per-class
--   recall; regression RMSE, MAE, R², pinball loss and coverage), beside the binary columns.

-- the probability check (predictions_score_check, or ..._check1 where migration 006 rebuilt the table)
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT conname FROM pg_constraint
             WHERE conrelid = 'public.predictions'::regclass AND contype = 'c' AND pg_get_constraintdef(oid) LIKE '%score%'
    LOOP
        EXECUTE format('ALTER TABLE public.predictions DROP CONSTRAINT %I', c.conname);
    END LOOP;
END
$$;
ALTER TABLE predictions ALTER COLUMN label DROP NOT NULL;
ALTER TABLE predictions ADD COLUMN IF NOT EXISTS scores jsonb;
COMMENT ON COLUMN predictions.score IS 'binary: the positive class''s probability; multiclass: the chosen class''s; regression: the predicted value';
COMMENT ON COLUMN predictions.label IS 'binary: the decision (spec threshold); multiclass: the chosen class; regression: the band, or NULL';
COMMENT ON COLUMN predictions.scores IS 'multiclass: every class''s probability; quantile regression: every quantile; else NULL';

CREATE OR REPLACE VIEW predictions_latest AS
SELECT DISTINCT ON (job, entity_id)
       job, ds, entity_id, score, label, model_name, model_version, run_id, scored_at, scores
FROM predictions
ORDER BY job, entity_id, ds DESC;

-- The loading table now knows the model's kind: a probability must lie in [0, 1], any score must be finite.
DROP FUNCTION IF EXISTS nightscore_create_loading_table(text, text, date);
CREATE OR REPLACE FUNCTION nightscore_create_loading_table(p_name text, p_job text, p_ds date, p_kind text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM public.nightscore_check_loading_name(p_name);
    IF p_kind NOT IN ('binary', 'multiclass', 'regression') THEN
        RAISE EXCEPTION 'nightscore: % is not a model kind', p_kind;
    END IF;
    EXECUTE format('CREATE TABLE nightscore_staging.%I (LIKE public.predictions INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', p_name);
    EXECUTE format('ALTER TABLE nightscore_staging.%I ADD CONSTRAINT %I CHECK (job = %L AND ds = %L::date)',
                   p_name, p_name || '_day', p_job, p_ds);
    IF p_kind = 'regression' THEN
        EXECUTE format('ALTER TABLE nightscore_staging.%I ADD CONSTRAINT %I CHECK (score > ''-Infinity'' AND score < ''Infinity'')',
                       p_name, p_name || '_score');
    ELSE
        EXECUTE format('ALTER TABLE nightscore_staging.%I ADD CONSTRAINT %I CHECK (score >= 0 AND score <= 1)', p_name, p_name || '_score');
    END IF;
    EXECUTE format('COMMENT ON TABLE nightscore_staging.%I IS %L', p_name, 'nightscore loading table (' || p_kind || '), created ' || now());
    IF session_user <> current_user THEN  -- the login that loads it (the owner has every right already)
        EXECUTE format('GRANT SELECT, INSERT ON nightscore_staging.%I TO %I', p_name, session_user);
    END IF;
END
$$;
REVOKE ALL ON FUNCTION nightscore_create_loading_table(text, text, date, text) FROM PUBLIC;

ALTER TABLE model_versions ADD COLUMN IF NOT EXISTS kind text NOT NULL DEFAULT 'binary'
    CHECK (kind IN ('binary', 'multiclass', 'regression'));
ALTER TABLE model_versions ADD COLUMN IF NOT EXISTS origin jsonb;
COMMENT ON COLUMN model_versions.origin IS 'trained: the job and window; registered: file, sha256, MLflow run id, who, note';

ALTER TABLE evaluations ADD COLUMN IF NOT EXISTS kind text NOT NULL DEFAULT 'binary';
ALTER TABLE evaluations ADD COLUMN IF NOT EXISTS metrics jsonb;
COMMENT ON COLUMN evaluations.metrics IS 'the kind''s metrics of the day (every kind; the binary ones also in their own columns)';

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'nightscore_owner') THEN
        ALTER FUNCTION nightscore_create_loading_table(text, text, date, text) OWNER TO nightscore_owner;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'nightscore_writer') THEN
        GRANT EXECUTE ON FUNCTION nightscore_create_loading_table(text, text, date, text) TO nightscore_writer;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'nightscore_reader') THEN
        GRANT SELECT ON predictions, predictions_latest TO nightscore_reader;
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'nightscore: privileges for model kinds not set (%); run `nightscore init` as a user that may create roles', SQLERRM;
END
$$;
