-- A truthful run ledger, bounded publishing and least privilege (issue #12).
--
-- * scoring_runs knows who runs a run (host, pid, Airflow task and try) and when it last heard from it
--   (heartbeat_at); a run whose process is gone becomes 'abandoned', one ended by SIGTERM/SIGINT
--   'interrupted'. 'published' is set by the swap's own transaction (published_at): if predictions holds
--   a run's rows, that run says so; 'succeeded' follows once its manifest and monitoring are written.
-- * Publishing goes through SECURITY DEFINER functions owned by nightscore_owner: the writer role can load
--   a day and swap it in without owning predictions, and the lock that serializes writers of one (job, ds)
--   is a row of publish_locks, which no other role can lock (advisory locks are open to every role).
-- * nightscore_owner owns the objects; nightscore_writer may append to the registry and the alias history
--   but not rewrite or delete them; nightscore_reader reads predictions and predictions_latest only.

ALTER TABLE scoring_runs DROP CONSTRAINT IF EXISTS scoring_runs_status_check;
ALTER TABLE scoring_runs ADD CONSTRAINT scoring_runs_status_check
    CHECK (status IN ('running', 'published', 'succeeded', 'failed', 'interrupted', 'abandoned'));
ALTER TABLE scoring_runs
    ADD COLUMN IF NOT EXISTS stage        text,         -- the stage at work, or the one the run ended in
    ADD COLUMN IF NOT EXISTS owner_host   text,         -- the machine of the process working on the run
    ADD COLUMN IF NOT EXISTS owner_pid    integer,      -- NULL between Airflow tasks (no process holds it)
    ADD COLUMN IF NOT EXISTS owner_task   text,         -- Airflow: dag_id.task_id[map_index] of the dag run
    ADD COLUMN IF NOT EXISTS owner_try    integer,      -- Airflow: the task instance's try number
    ADD COLUMN IF NOT EXISTS heartbeat_at timestamptz,  -- refreshed while a process works on the run
    ADD COLUMN IF NOT EXISTS published_at timestamptz;  -- the commit of the swap: the run's point of success
CREATE INDEX IF NOT EXISTS scoring_runs_open ON scoring_runs (started_at) WHERE finished_at IS NULL;
UPDATE scoring_runs SET published_at = finished_at WHERE status = 'succeeded' AND rows_published > 0 AND published_at IS NULL;

-- One row per (job, ds) ever published; its row lock serializes the writers of that day.
CREATE TABLE IF NOT EXISTS publish_locks (
    job  text NOT NULL,
    ds   date NOT NULL,
    PRIMARY KEY (job, ds)
);

-- Loading tables are named load_<12 hex digits of the run id>_<12 random hex digits>; nothing else may be
-- created, sealed, dropped or swapped in through these functions.
CREATE OR REPLACE FUNCTION nightscore_check_loading_name(p_name text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF p_name !~ '^load_[0-9a-f]{12}_[0-9a-f]{12}$' THEN
        RAISE EXCEPTION 'nightscore: % is not a loading table name', p_name;
    END IF;
END
$$;

-- A table shaped like predictions, in nightscore_staging, to bulk-load one day into. It carries the day's
-- CHECK (so ATTACH skips its scan) and its creation time (so a sweep can tell its age).
CREATE OR REPLACE FUNCTION nightscore_create_loading_table(p_name text, p_job text, p_ds date) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM public.nightscore_check_loading_name(p_name);
    EXECUTE format('CREATE TABLE nightscore_staging.%I (LIKE public.predictions INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', p_name);
    EXECUTE format('ALTER TABLE nightscore_staging.%I ADD CONSTRAINT %I CHECK (job = %L AND ds = %L::date)',
                   p_name, p_name || '_day', p_job, p_ds);
    EXECUTE format('COMMENT ON TABLE nightscore_staging.%I IS %L', p_name, 'nightscore loading table, created ' || now());
    IF session_user <> current_user THEN  -- the login that loads it (the owner has every right already)
        EXECUTE format('GRANT SELECT, INSERT ON nightscore_staging.%I TO %I', p_name, session_user);
    END IF;
END
$$;

-- After the bulk load: the primary key that ATTACH adopts (a duplicate entity fails here, before publishing).
CREATE OR REPLACE FUNCTION nightscore_seal_loading_table(p_name text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM public.nightscore_check_loading_name(p_name);
    EXECUTE format('ALTER TABLE nightscore_staging.%I ADD CONSTRAINT %I PRIMARY KEY (entity_id, job, ds)', p_name, p_name || '_pkey');
END
$$;

CREATE OR REPLACE FUNCTION nightscore_drop_loading_table(p_name text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM public.nightscore_check_loading_name(p_name);
    EXECUTE format('DROP TABLE IF EXISTS nightscore_staging.%I', p_name);
END
$$;

-- Every lock the swap needs, taken in one statement: the (job, ds) writers' row lock, then ACCESS EXCLUSIVE
-- on predictions and on the day's current partition. The caller bounds this statement's wait (lock_timeout
-- and statement_timeout); once it returns, the swap itself waits for nothing.
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
    RETURN has_old;
END
$$;

-- Swap the loaded table in as the (job, ds) partition, drop the old day, and mark the run published, all in
-- the caller's transaction (after nightscore_lock_partition): readers see the old day or the new one.
CREATE OR REPLACE FUNCTION nightscore_swap_partition(p_name text, p_job text, p_ds date, p_run_id uuid, p_rows bigint)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    leaf text := left(p_job, 50) || '__' || to_char(p_ds, 'YYYYMMDD');
    has_old boolean;
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
    IF session_user <> current_user THEN  -- the loading login's grant ends with the load
        EXECUTE format('REVOKE ALL ON nightscore_partitions.%I FROM %I', leaf, session_user);
    END IF;
    UPDATE public.scoring_runs
       SET status = 'published', published_at = now(), rows_published = p_rows, error = NULL
     WHERE run_id = p_run_id;
    RETURN has_old;
END
$$;

REVOKE ALL ON FUNCTION nightscore_create_loading_table(text, text, date), nightscore_seal_loading_table(text),
    nightscore_drop_loading_table(text), nightscore_lock_partition(text, date),
    nightscore_swap_partition(text, text, date, uuid, bigint) FROM PUBLIC;

-- Owner, writer and reader. Needs a migrating user that may create roles (the embedded server's, or an admin);
-- otherwise every object stays with the migrating user and a notice says what to do.
DO $$
DECLARE
    obj record;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'nightscore_owner') THEN
        CREATE ROLE nightscore_owner NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'nightscore_reader') THEN
        CREATE ROLE nightscore_reader NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'nightscore_writer') THEN
        CREATE ROLE nightscore_writer NOLOGIN;
    END IF;

    -- the owner owns the nightscore schemas, tables, views, sequences and functions; handing an object to it
    -- takes membership (a CREATEROLE login holds ADMIN OPTION on the roles it created, and may take it)
    -- (PostgreSQL 16 gives a CREATEROLE login ADMIN but not SET on the roles it creates)
    IF current_setting('server_version_num')::int >= 160000 THEN
        IF NOT pg_has_role(current_user, 'nightscore_owner', 'SET') THEN
            EXECUTE format('GRANT nightscore_owner TO %I WITH SET TRUE', current_user);
        END IF;
    ELSIF NOT pg_has_role(current_user, 'nightscore_owner', 'MEMBER') THEN
        EXECUTE format('GRANT nightscore_owner TO %I', current_user);
    END IF;
    -- a new owner must be able to create what it owns
    EXECUTE format('GRANT CREATE ON DATABASE %I TO nightscore_owner', current_database());
    GRANT CREATE ON SCHEMA public TO nightscore_owner;
    ALTER SCHEMA nightscore_staging OWNER TO nightscore_owner;
    ALTER SCHEMA nightscore_partitions OWNER TO nightscore_owner;
    FOR obj IN
        SELECT n.nspname, c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'v', 'S')
          AND NOT (c.relkind = 'S' AND EXISTS (SELECT FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'i')))
          AND ((n.nspname = 'public' AND c.relname IN ('predictions', 'predictions_latest', 'scoring_runs', 'quarantined_rows',
                    'model_versions', 'model_aliases', 'model_alias_history', 'schema_migrations', 'publish_locks'))
               OR n.nspname IN ('nightscore_staging', 'nightscore_partitions'))
    LOOP
        EXECUTE format('ALTER %s %I.%I OWNER TO nightscore_owner',
                       CASE obj.relkind WHEN 'v' THEN 'VIEW' WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END, obj.nspname, obj.relname);
    END LOOP;
    ALTER FUNCTION nightscore_check_loading_name(text) OWNER TO nightscore_owner;
    ALTER FUNCTION nightscore_create_loading_table(text, text, date) OWNER TO nightscore_owner;
    ALTER FUNCTION nightscore_seal_loading_table(text) OWNER TO nightscore_owner;
    ALTER FUNCTION nightscore_drop_loading_table(text) OWNER TO nightscore_owner;
    ALTER FUNCTION nightscore_lock_partition(text, date) OWNER TO nightscore_owner;
    ALTER FUNCTION nightscore_swap_partition(text, text, date, uuid, bigint) OWNER TO nightscore_owner;

    -- the writer: runs the pipeline; appends to the registry, never rewrites or deletes it
    REVOKE ALL ON ALL TABLES IN SCHEMA public FROM nightscore_writer;
    REVOKE CREATE ON SCHEMA nightscore_staging, nightscore_partitions FROM nightscore_writer;
    GRANT USAGE ON SCHEMA public, nightscore_staging TO nightscore_writer;
    GRANT SELECT ON predictions, predictions_latest, schema_migrations TO nightscore_writer;
    GRANT SELECT, INSERT, UPDATE ON scoring_runs, quarantined_rows TO nightscore_writer;
    GRANT SELECT, INSERT ON model_versions, model_alias_history TO nightscore_writer;
    GRANT SELECT, INSERT, UPDATE ON model_aliases TO nightscore_writer;
    GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO nightscore_writer;
    GRANT EXECUTE ON FUNCTION nightscore_create_loading_table(text, text, date), nightscore_seal_loading_table(text),
        nightscore_drop_loading_table(text), nightscore_lock_partition(text, date),
        nightscore_swap_partition(text, text, date, uuid, bigint) TO nightscore_writer;

    -- the reader: the application objects only
    REVOKE ALL ON ALL TABLES IN SCHEMA public FROM nightscore_reader;
    GRANT USAGE ON SCHEMA public TO nightscore_reader;
    GRANT SELECT ON predictions, predictions_latest TO nightscore_reader;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO nightscore_reader, nightscore_writer', current_database());
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'nightscore: roles and ownership not set (%); run `nightscore init` as a user that may create roles', SQLERRM;
END
$$;

-- Without it the writer sees other users' sessions without their state or transaction age, which a
-- publish names when it waits for them. Optional: skipped where the migrating user may not grant it.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'nightscore_writer') THEN
        GRANT pg_read_all_stats TO nightscore_writer;
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'nightscore: pg_read_all_stats not granted to nightscore_writer (%)', SQLERRM;
END
$$;
