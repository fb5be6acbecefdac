-- Sharded runs (issue #13): a day split by a stable hash of the entity key into shards, each extracted,
-- validated, scored and loaded on its own (a worker process or a mapped Airflow task), then published once.
--
-- * scoring_runs says how many shards a run has and which loading table its shards load into.
-- * run_shards holds one row per shard of a run: who works on it, its attempt, its counts, its artifacts.
-- * nightscore_shard_of is the shard of a key: the first 32 bits of md5(key) modulo the shard count, the same
--   expression the source query is filtered by (pipeline/shards.py) and that Python computes.
-- * nightscore_clear_shard deletes one shard's rows from a loading table: a retried shard replaces what an
--   earlier attempt of it loaded, nothing else.

ALTER TABLE scoring_runs
    ADD COLUMN IF NOT EXISTS shards        integer NOT NULL DEFAULT 1,
    ADD COLUMN IF NOT EXISTS loading_table text;

CREATE TABLE IF NOT EXISTS run_shards (
    run_id            uuid    NOT NULL REFERENCES scoring_runs (run_id) ON DELETE CASCADE,
    shard             integer NOT NULL,
    shards            integer NOT NULL,
    status            text    NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'running', 'loaded', 'failed', 'interrupted', 'abandoned')),
    attempt           integer NOT NULL DEFAULT 0,
    stage             text,
    owner_host        text,
    owner_pid         integer,
    owner_task        text,
    rows_extracted    bigint,
    rows_valid        bigint,
    rows_quarantined  bigint,
    rows_scored       bigint,
    rows_loaded       bigint,
    features_uri      text,
    features_sha256   text,
    validation_uri    text,
    data_docs_uri     text,
    predictions_uri   text,
    validation_summary jsonb,
    seconds           jsonb   NOT NULL DEFAULT '{}'::jsonb,  -- wall seconds per stage
    resources         jsonb,          -- {"cpu": {stage: CPU seconds of the shard's process}, "peak_mb": its peak RSS}
    error             text,
    error_detail      jsonb,          -- the error as {kind, what, where, fix}: the parent raises it again
    started_at        timestamptz,
    finished_at       timestamptz,
    PRIMARY KEY (run_id, shard),
    CHECK (shard >= 0 AND shard < shards)
);

CREATE OR REPLACE FUNCTION nightscore_shard_of(p_key text, p_shards integer) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT mod(('x' || substr(md5(p_key), 1, 8))::bit(32)::bigint, p_shards)::integer
$$;

CREATE OR REPLACE FUNCTION nightscore_clear_shard(p_name text, p_shard integer, p_shards integer) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    n bigint;
BEGIN
    PERFORM public.nightscore_check_loading_name(p_name);
    EXECUTE format('DELETE FROM nightscore_staging.%I WHERE public.nightscore_shard_of(entity_id, %s) = %s',
                   p_name, p_shards, p_shard);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

REVOKE ALL ON FUNCTION nightscore_clear_shard(text, integer, integer) FROM PUBLIC;

-- Owned by nightscore_owner and open to the writer, as in 008 (skipped, with a notice, where the migrating
-- user may not hand objects to the owner).
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'nightscore_owner') THEN
        ALTER TABLE run_shards OWNER TO nightscore_owner;
        ALTER FUNCTION nightscore_shard_of(text, integer) OWNER TO nightscore_owner;
        ALTER FUNCTION nightscore_clear_shard(text, integer, integer) OWNER TO nightscore_owner;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'nightscore_writer') THEN
        GRANT SELECT, INSERT, UPDATE ON run_shards TO nightscore_writer;
        GRANT EXECUTE ON FUNCTION nightscore_clear_shard(text, integer, integer) TO nightscore_writer;
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'nightscore: run_shards privileges not set (%); run `nightscore init` as a user that may create roles', SQLERRM;
END
$$;
