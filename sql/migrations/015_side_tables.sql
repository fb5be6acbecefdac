-- Side tables published with the day (issue #26): prediction_reasons (each row's top feature contributions)
-- and shadow_predictions (challenger models scoring the same batches), both partitioned like predictions and
-- swapped in by the same transaction as the day's predictions.
--
-- * A run that explains or shadows creates, beside its loading table load_<..>, the side loading tables
--   load_<..>_reasons / load_<..>_shadow in nightscore_staging (nightscore_create_side_table). Its shards COPY
--   into them; a retried shard's rows are cleared in them too (nightscore_clear_shard / nightscore_clear_keys).
-- * nightscore_seal_loading_table gives them their primary keys; nightscore_lock_partition locks their
--   parents and the day's old partitions too; nightscore_swap_partition drops the day's old side partitions
--   (whatever the new run has: a day's reasons and shadow rows always belong to its published run) and
--   attaches the new ones, in the caller's transaction. A reader sees a day's predictions and reasons of the
--   same run, never a mix.
-- * Partitions live in nightscore_reasons and nightscore_shadow (the same leaf names as the day's predictions).
-- * nightscore_reader reads prediction_reasons (and through the typed per-job view); shadow_predictions is
--   the writer's only: no application sees a challenger's scores.

CREATE SCHEMA IF NOT EXISTS nightscore_reasons;
CREATE SCHEMA IF NOT EXISTS nightscore_shadow;
COMMENT ON SCHEMA nightscore_reasons IS 'nightscore: one table per explained (job, ds); read them through public.prediction_reasons';
COMMENT ON SCHEMA nightscore_shadow IS 'nightscore: one table per shadowed (job, ds); read them through public.shadow_predictions';

CREATE TABLE IF NOT EXISTS prediction_reasons (
    job             text             NOT NULL,
    ds              date             NOT NULL,
    entity_id       text COLLATE "C" NOT NULL,
    explained_class text,                       -- multiclass: the chosen class the reasons explain; else NULL
    base_value      double precision NOT NULL,  -- the model's expected margin; base_value + all contributions = the row's margin
    reasons         jsonb            NOT NULL,  -- [{"feature", "value", "contribution"}, ...] largest |contribution| first
    rest            double precision NOT NULL,  -- every other feature's contributions together
    run_id          uuid             NOT NULL,
    PRIMARY KEY (entity_id, job, ds)
) PARTITION BY RANGE (job, ds);
COMMENT ON TABLE prediction_reasons IS
    'nightscore: each published row''s top feature contributions (margin units: log-odds for classifiers), published with its day';

CREATE TABLE IF NOT EXISTS shadow_predictions (
    job            text             NOT NULL,
    ds             date             NOT NULL,
    entity_id      text COLLATE "C" NOT NULL,
    score          double precision NOT NULL,
    label          text,
    model_name     text             NOT NULL,
    model_version  integer          NOT NULL,
    run_id         uuid             NOT NULL,  -- the champion's run that scored the same batches
    scored_at      timestamptz      NOT NULL,
    scores         jsonb,
    PRIMARY KEY (entity_id, job, ds, model_version)
) PARTITION BY RANGE (job, ds);
COMMENT ON TABLE shadow_predictions IS
    'nightscore: challenger models scoring the same batches as the published day; never in an application''s view';

-- the side tables' loading tables: load_<12 hex>_<12 hex>_<side>, shaped like their parent, with the day's CHECK
CREATE OR REPLACE FUNCTION nightscore_side_parent(p_side text) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN CASE p_side WHEN 'reasons' THEN 'prediction_reasons' WHEN 'shadow' THEN 'shadow_predictions'
           ELSE NULL END;
END
$$;

CREATE OR REPLACE FUNCTION nightscore_create_side_table(p_name text, p_side text, p_job text, p_ds date) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_table text := p_name || '_' || p_side;
BEGIN
    PERFORM public.nightscore_check_loading_name(p_name);
    IF public.nightscore_side_parent(p_side) IS NULL THEN
        RAISE EXCEPTION 'nightscore: % is not a side table', p_side;
    END IF;
    EXECUTE format('CREATE TABLE IF NOT EXISTS nightscore_staging.%I (LIKE public.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                   v_table, public.nightscore_side_parent(p_side));
    EXECUTE format('ALTER TABLE nightscore_staging.%I DROP CONSTRAINT IF EXISTS %I', v_table, v_table || '_day');
    EXECUTE format('ALTER TABLE nightscore_staging.%I ADD CONSTRAINT %I CHECK (job = %L AND ds = %L::date)',
                   v_table, v_table || '_day', p_job, p_ds);
    EXECUTE format('COMMENT ON TABLE nightscore_staging.%I IS %L', v_table, 'nightscore loading table (' || p_side || '), created ' || now());
    IF session_user <> current_user THEN
        EXECUTE format('GRANT SELECT, INSERT ON nightscore_staging.%I TO %I', v_table, session_user);
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION nightscore_seal_loading_table(p_name text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM public.nightscore_check_loading_name(p_name);
    EXECUTE format('ALTER TABLE nightscore_staging.%I ADD CONSTRAINT %I PRIMARY KEY (entity_id, job, ds)', p_name, p_name || '_pkey');
    IF to_regclass(format('nightscore_staging.%I', p_name || '_reasons')) IS NOT NULL THEN
        EXECUTE format('ALTER TABLE nightscore_staging.%I ADD CONSTRAINT %I PRIMARY KEY (entity_id, job, ds)',
                       p_name || '_reasons', p_name || '_reasons_pkey');
    END IF;
    IF to_regclass(format('nightscore_staging.%I', p_name || '_shadow')) IS NOT NULL THEN
        EXECUTE format('ALTER TABLE nightscore_staging.%I ADD CONSTRAINT %I PRIMARY KEY (entity_id, job, ds, model_version)',
                       p_name || '_shadow', p_name || '_shadow_pkey');
    END IF;
END
$$;

-- explain.max_rows: keep the reasons of the day's p_max highest-scoring rows (ties by entity), drop the rest
CREATE OR REPLACE FUNCTION nightscore_trim_reasons(p_name text, p_max bigint) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    n bigint;
BEGIN
    PERFORM public.nightscore_check_loading_name(p_name);
    EXECUTE format('DELETE FROM nightscore_staging.%I r WHERE NOT EXISTS (SELECT FROM (SELECT entity_id FROM nightscore_staging.%I '
                   'ORDER BY score DESC, entity_id LIMIT %s) t WHERE t.entity_id = r.entity_id)',
                   p_name || '_reasons', p_name, p_max);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

CREATE OR REPLACE FUNCTION nightscore_drop_loading_table(p_name text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM public.nightscore_check_loading_name(p_name);
    EXECUTE format('DROP TABLE IF EXISTS nightscore_staging.%I, nightscore_staging.%I, nightscore_staging.%I',
                   p_name, p_name || '_reasons', p_name || '_shadow');
END
$$;

CREATE OR REPLACE FUNCTION nightscore_clear_shard(p_name text, p_shard integer, p_shards integer) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    n bigint;
    v_side text;
BEGIN
    PERFORM public.nightscore_check_loading_name(p_name);
    FOREACH v_side IN ARRAY ARRAY['_reasons', '_shadow'] LOOP
        IF to_regclass(format('nightscore_staging.%I', p_name || v_side)) IS NOT NULL THEN
            EXECUTE format('DELETE FROM nightscore_staging.%I WHERE public.nightscore_shard_of(entity_id, %s) = %s',
                           p_name || v_side, p_shards, p_shard);
        END IF;
    END LOOP;
    EXECUTE format('DELETE FROM nightscore_staging.%I WHERE public.nightscore_shard_of(entity_id, %s) = %s',
                   p_name, p_shards, p_shard);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

CREATE OR REPLACE FUNCTION nightscore_clear_keys(p_name text, p_keys text[]) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    n bigint;
    v_side text;
BEGIN
    PERFORM public.nightscore_check_loading_name(p_name);
    FOREACH v_side IN ARRAY ARRAY['_reasons', '_shadow'] LOOP
        IF to_regclass(format('nightscore_staging.%I', p_name || v_side)) IS NOT NULL THEN
            EXECUTE format('DELETE FROM nightscore_staging.%I WHERE entity_id = ANY ($1)', p_name || v_side) USING p_keys;
        END IF;
    END LOOP;
    EXECUTE format('DELETE FROM nightscore_staging.%I WHERE entity_id = ANY ($1)', p_name) USING p_keys;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- every lock the swap needs, in one order: the writers' row lock, predictions and its old partition, then
-- each side table and its old partition
CREATE OR REPLACE FUNCTION nightscore_lock_partition(p_job text, p_ds date) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    leaf text := left(p_job, 50) || '__' || to_char(p_ds, 'YYYYMMDD');
    has_old boolean;
BEGIN
    INSERT INTO public.publish_locks (job, ds) VALUES (p_job, p_ds) ON CONFLICT DO NOTHING;
    PERFORM 1 FROM public.publish_locks WHERE job = p_job AND ds = p_ds FOR UPDATE;
    has_old := to_regclass(format('nightscore_partitions.%I', leaf)) IS NOT NULL;
    IF has_old THEN
        EXECUTE format('LOCK TABLE ONLY public.predictions, ONLY nightscore_partitions.%I IN ACCESS EXCLUSIVE MODE', leaf);
    ELSE
        LOCK TABLE ONLY public.predictions IN ACCESS EXCLUSIVE MODE;
    END IF;
    LOCK TABLE ONLY public.prediction_reasons IN ACCESS EXCLUSIVE MODE;
    IF to_regclass(format('nightscore_reasons.%I', leaf)) IS NOT NULL THEN
        EXECUTE format('LOCK TABLE ONLY nightscore_reasons.%I IN ACCESS EXCLUSIVE MODE', leaf);
    END IF;
    LOCK TABLE ONLY public.shadow_predictions IN ACCESS EXCLUSIVE MODE;
    IF to_regclass(format('nightscore_shadow.%I', leaf)) IS NOT NULL THEN
        EXECUTE format('LOCK TABLE ONLY nightscore_shadow.%I IN ACCESS EXCLUSIVE MODE', leaf);
    END IF;
    RETURN has_old;
END
$$;

CREATE OR REPLACE FUNCTION nightscore_swap_partition(p_name text, p_job text, p_ds date, p_run_id uuid, p_rows bigint)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    leaf text := left(p_job, 50) || '__' || to_char(p_ds, 'YYYYMMDD');
    has_old boolean;
    v_side text;
    v_schema text;
    v_parent text;
BEGIN
    PERFORM public.nightscore_check_loading_name(p_name);
    has_old := to_regclass(format('nightscore_partitions.%I', leaf)) IS NOT NULL;
    IF has_old THEN
        EXECUTE format('ALTER TABLE public.predictions DETACH PARTITION nightscore_partitions.%I', leaf);
        EXECUTE format('DROP TABLE nightscore_partitions.%I', leaf);
    END IF;
    EXECUTE format('ALTER TABLE nightscore_staging.%I SET SCHEMA nightscore_partitions', p_name);
    EXECUTE format('ALTER TABLE nightscore_partitions.%I RENAME TO %I', p_name, leaf);
    EXECUTE format('ALTER TABLE public.predictions ATTACH PARTITION nightscore_partitions.%I FOR VALUES FROM (%L, %L) TO (%L, %L)',
                   leaf, p_job, p_ds, p_job, p_ds + 1);
    IF session_user <> current_user THEN
        EXECUTE format('REVOKE ALL ON nightscore_partitions.%I FROM %I', leaf, session_user);
    END IF;
    FOREACH v_side IN ARRAY ARRAY['reasons', 'shadow'] LOOP
        v_schema := 'nightscore_' || v_side;
        v_parent := public.nightscore_side_parent(v_side);
        IF to_regclass(format('%I.%I', v_schema, leaf)) IS NOT NULL THEN  -- the day's old side rows go with its old run
            EXECUTE format('ALTER TABLE public.%I DETACH PARTITION %I.%I', v_parent, v_schema, leaf);
            EXECUTE format('DROP TABLE %I.%I', v_schema, leaf);
        END IF;
        IF to_regclass(format('nightscore_staging.%I', p_name || '_' || v_side)) IS NOT NULL THEN
            EXECUTE format('ALTER TABLE nightscore_staging.%I SET SCHEMA %I', p_name || '_' || v_side, v_schema);
            EXECUTE format('ALTER TABLE %I.%I RENAME TO %I', v_schema, p_name || '_' || v_side, leaf);
            EXECUTE format('ALTER TABLE public.%I ATTACH PARTITION %I.%I FOR VALUES FROM (%L, %L) TO (%L, %L)',
                           v_parent, v_schema, leaf, p_job, p_ds, p_job, p_ds + 1);
            IF session_user <> current_user THEN
                EXECUTE format('REVOKE ALL ON %I.%I FROM %I', v_schema, leaf, session_user);
            END IF;
        END IF;
    END LOOP;
    UPDATE public.scoring_runs
       SET status = 'published', published_at = now(), rows_published = p_rows, error = NULL
     WHERE run_id = p_run_id;
    RETURN has_old;
END
$$;

-- the typed per-job view joins the row's reasons (NULL where the day was not explained); job_views.shape
-- says which shape a view has, so that each is rebuilt once in this one
ALTER TABLE job_views ADD COLUMN IF NOT EXISTS shape integer NOT NULL DEFAULT 1;

CREATE OR REPLACE FUNCTION nightscore_job_view(p_job text, p_columns jsonb) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_name  text := 'predictions_' || p_job;
    v_cols  text := '';
    v_n     integer := jsonb_array_length(p_columns);
    v_i     integer := 0;
    v_col   jsonb;
    v_part  text;
BEGIN
    IF p_job !~ '^[a-z][a-z0-9_]{0,62}$' OR p_job = 'latest' THEN
        RAISE EXCEPTION 'nightscore: % is not a job name', p_job;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('nightscore_job_view:' || p_job));
    IF EXISTS (SELECT FROM public.job_views WHERE job = p_job AND key_columns = p_columns AND shape = 2)
       AND EXISTS (SELECT FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE n.nspname = 'public' AND c.relname = v_name AND c.relkind = 'v') THEN
        RETURN false;
    END IF;
    FOR v_col IN SELECT * FROM jsonb_array_elements(p_columns) LOOP
        v_i := v_i + 1;
        IF (v_col->>'name') !~ '^[a-z][a-z0-9_]{0,62}$' THEN
            RAISE EXCEPTION 'nightscore: % is not a key column name', v_col->>'name';
        END IF;
        IF (v_col->>'type') NOT IN ('smallint', 'integer', 'bigint', 'text', 'date', 'boolean') THEN
            RAISE EXCEPTION 'nightscore: % is not a key column type', v_col->>'type';
        END IF;
        IF v_n = 1 THEN
            v_part := 'p.entity_id';
        ELSE
            v_part := format('replace(replace(split_part(p.entity_id, ''|'', %s), ''%%7C'', ''|''), ''%%25'', ''%%'')', v_i);
        END IF;
        v_cols := v_cols || format('(%s)::%s AS %I, ', v_part, v_col->>'type', v_col->>'name');
    END LOOP;
    EXECUTE format('DROP VIEW IF EXISTS public.%I', v_name);
    IF NOT p_columns @> '[{"name": "entity_id"}]' THEN
        v_cols := v_cols || 'p.entity_id, ';
    END IF;
    EXECUTE format('CREATE VIEW public.%I AS SELECT %s p.score, p.label, p.scores, p.model_name, p.model_version, p.ds, p.run_id, '
                   'p.scored_at, r.reasons, r.base_value AS reasons_base_value, r.rest AS reasons_rest, r.explained_class '
                   'FROM public.predictions p LEFT JOIN public.prediction_reasons r '
                   'ON r.job = p.job AND r.ds = p.ds AND r.entity_id = p.entity_id AND r.run_id = p.run_id '
                   'WHERE p.job = %L', v_name, v_cols, p_job);
    EXECUTE format('COMMENT ON VIEW public.%I IS %L', v_name,
                   'nightscore: the predictions of job ' || p_job || ' with its key''s own columns and each row''s reasons (kept up to date by nightscore)');
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'nightscore_reader') THEN
        EXECUTE format('GRANT SELECT ON public.%I TO nightscore_reader', v_name);
    END IF;
    INSERT INTO public.job_views (job, view_name, key_columns, shape) VALUES (p_job, v_name, p_columns, 2)
    ON CONFLICT (job) DO UPDATE SET view_name = EXCLUDED.view_name, key_columns = EXCLUDED.key_columns, shape = 2, updated_at = now();
    RETURN true;
END
$$;

-- the existing views, in the new shape now (the function is owned by the migrating user or the owner)
DO $$
DECLARE
    v record;
BEGIN
    FOR v IN SELECT job, key_columns FROM job_views WHERE shape < 2 LOOP
        PERFORM nightscore_job_view(v.job, v.key_columns);
    END LOOP;
END
$$;

REVOKE ALL ON FUNCTION nightscore_create_side_table(text, text, text, date), nightscore_trim_reasons(text, bigint) FROM PUBLIC;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'nightscore_owner') THEN
        ALTER SCHEMA nightscore_reasons OWNER TO nightscore_owner;
        ALTER SCHEMA nightscore_shadow OWNER TO nightscore_owner;
        ALTER TABLE prediction_reasons OWNER TO nightscore_owner;
        ALTER TABLE shadow_predictions OWNER TO nightscore_owner;
        ALTER FUNCTION nightscore_side_parent(text) OWNER TO nightscore_owner;
        ALTER FUNCTION nightscore_create_side_table(text, text, text, date) OWNER TO nightscore_owner;
        ALTER FUNCTION nightscore_trim_reasons(text, bigint) OWNER TO nightscore_owner;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'nightscore_writer') THEN
        GRANT SELECT ON prediction_reasons, shadow_predictions TO nightscore_writer;
        GRANT EXECUTE ON FUNCTION nightscore_create_side_table(text, text, text, date), nightscore_trim_reasons(text, bigint)
            TO nightscore_writer;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'nightscore_reader') THEN
        GRANT USAGE ON SCHEMA public TO nightscore_reader;
        GRANT SELECT ON prediction_reasons TO nightscore_reader;
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'nightscore: privileges for prediction_reasons and shadow_predictions not set (%); run `nightscore init` as a user that may create roles', SQLERRM;
END
$$;
