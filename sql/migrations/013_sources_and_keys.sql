-- Sources and keys (issue #24): keys of several columns, a typed view per job, and Parquet shards.
--
-- * predictions keeps one text key, entity_id, for every job (one shape of table and primary key): a key of
--   several columns is their values joined by '|' (each with '%' as %25 and '|' as %7C: pipeline/keys.py).
-- * job_views records each job's key columns and their types (from the source, recorded by the job's runs);
--   nightscore_job_view(job, columns) creates predictions_<job>, a view of the job's rows with the key's own
--   columns and types, and grants it to nightscore_reader. It is replaced only when the key's columns or
--   types change, and never dropped by anything automatic.
-- * nightscore_clear_keys deletes given keys' rows from a loading table: a retried shard of a Parquet source
--   (split by row group, not by the key's hash) replaces what an earlier attempt of it loaded, nothing else.

CREATE TABLE IF NOT EXISTS job_views (
    job         text        PRIMARY KEY,
    view_name   text        NOT NULL,
    key_columns jsonb       NOT NULL,  -- [{"name": "store_id", "type": "integer"}, ...]
    updated_at  timestamptz NOT NULL DEFAULT now()
);

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
    PERFORM pg_advisory_xact_lock(hashtext('nightscore_job_view:' || p_job));  -- concurrent runs of the job: one at a time
    IF EXISTS (SELECT FROM public.job_views WHERE job = p_job AND key_columns = p_columns)
       AND EXISTS (SELECT FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE n.nspname = 'public' AND c.relname = v_name AND c.relkind = 'v') THEN
        RETURN false;  -- up to date
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
            v_part := 'entity_id';
        ELSE  -- the i-th part of the text key, '%7C' and '%25' written back
            v_part := format('replace(replace(split_part(entity_id, ''|'', %s), ''%%7C'', ''|''), ''%%25'', ''%%'')', v_i);
        END IF;
        v_cols := v_cols || format('(%s)::%s AS %I, ', v_part, v_col->>'type', v_col->>'name');
    END LOOP;
    EXECUTE format('DROP VIEW IF EXISTS public.%I', v_name);
    IF NOT p_columns @> '[{"name": "entity_id"}]' THEN  -- the text key too, unless a key column has its name
        v_cols := v_cols || 'entity_id, ';
    END IF;
    EXECUTE format('CREATE VIEW public.%I AS SELECT %s score, label, scores, model_name, model_version, ds, run_id, scored_at '
                   'FROM public.predictions WHERE job = %L', v_name, v_cols, p_job);
    EXECUTE format('COMMENT ON VIEW public.%I IS %L', v_name,
                   'nightscore: the predictions of job ' || p_job || ' with its key''s own columns (kept up to date by nightscore)');
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'nightscore_reader') THEN
        EXECUTE format('GRANT SELECT ON public.%I TO nightscore_reader', v_name);
    END IF;
    INSERT INTO public.job_views (job, view_name, key_columns) VALUES (p_job, v_name, p_columns)
    ON CONFLICT (job) DO UPDATE SET view_name = EXCLUDED.view_name, key_columns = EXCLUDED.key_columns, updated_at = now();
    RETURN true;
END
$$;
REVOKE ALL ON FUNCTION nightscore_job_view(text, jsonb) FROM PUBLIC;

CREATE OR REPLACE FUNCTION nightscore_clear_keys(p_name text, p_keys text[]) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    n bigint;
BEGIN
    PERFORM public.nightscore_check_loading_name(p_name);
    EXECUTE format('DELETE FROM nightscore_staging.%I WHERE entity_id = ANY ($1)', p_name) USING p_keys;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
REVOKE ALL ON FUNCTION nightscore_clear_keys(text, text[]) FROM PUBLIC;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'nightscore_owner') THEN
        ALTER TABLE job_views OWNER TO nightscore_owner;
        ALTER FUNCTION nightscore_job_view(text, jsonb) OWNER TO nightscore_owner;
        ALTER FUNCTION nightscore_clear_keys(text, text[]) OWNER TO nightscore_owner;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'nightscore_writer') THEN
        GRANT SELECT ON job_views TO nightscore_writer;
        GRANT EXECUTE ON FUNCTION nightscore_job_view(text, jsonb) TO nightscore_writer;
        GRANT EXECUTE ON FUNCTION nightscore_clear_keys(text, text[]) TO nightscore_writer;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'nightscore_reader') THEN
        GRANT SELECT ON job_views TO nightscore_reader;
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'nightscore: privileges for job views not set (%); run `nightscore init` as a user that may create roles', SQLERRM;
END
$$;
