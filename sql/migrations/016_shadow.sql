-- Shadow (challenger) scoring (issue #26): models named by the job spec's model.shadow (or `nightscore score
-- --shadow V`) score the same shards of the same day as the champion, into shadow_predictions (015), never
-- into predictions. A shadow model's failure never fails the day.
--
-- * shadow_runs: one row per shadow model a run was asked for: what was asked (an alias or a version), the
--   version it resolved to and its checksum, its status, its rows and seconds, and each shard's detail
--   ({"<shard>": {status, rows, seconds, attempt, error, uri}}). 'pending' until the run publishes; then
--   'scored' when every shard scored it, else 'failed' (its rows removed before the swap). 'skipped': the
--   champion's own version, a version asked for twice, or a dry run.
-- * nightscore_clear_shadow_version removes one version's rows from a run's shadow loading table (a shadow
--   that failed in some shard is published for no shard of the day).
-- * model_alias_history.evidence: what a promotion cites (`nightscore model promote ... --evidence compare`:
--   the comparison of the version as a shadow against the published champion), kept with the move.

CREATE TABLE IF NOT EXISTS shadow_runs (
    run_id         uuid             NOT NULL REFERENCES scoring_runs (run_id) ON DELETE CASCADE,
    requested      text             NOT NULL,  -- as the spec or --shadow named it: an alias, or a version number
    position       integer          NOT NULL DEFAULT 0,  -- its place in the list asked for
    job            text             NOT NULL,
    ds             date             NOT NULL,
    model_name     text             NOT NULL,
    model_version  integer,                    -- NULL: the alias or version could not be resolved
    sha256         text,
    status         text             NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'scored', 'failed', 'skipped')),
    rows           bigint,
    seconds        double precision,           -- the shards' scoring and loading of this model, added up
    error          text,
    note           text,
    shards         jsonb            NOT NULL DEFAULT '{}'::jsonb,
    created_at     timestamptz      NOT NULL DEFAULT now(),
    updated_at     timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, requested)
);
CREATE INDEX IF NOT EXISTS shadow_runs_day ON shadow_runs (job, ds, model_version);
COMMENT ON TABLE shadow_runs IS 'nightscore: each shadow model a run was asked for, its version, checksum, status and per-shard detail';

CREATE OR REPLACE FUNCTION nightscore_clear_shadow_version(p_name text, p_version integer) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    n bigint;
BEGIN
    PERFORM public.nightscore_check_loading_name(p_name);
    IF to_regclass(format('nightscore_staging.%I', p_name || '_shadow')) IS NULL THEN
        RETURN 0;
    END IF;
    EXECUTE format('DELETE FROM nightscore_staging.%I WHERE model_version = $1', p_name || '_shadow') USING p_version;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

REVOKE ALL ON FUNCTION nightscore_clear_shadow_version(text, integer) FROM PUBLIC;

ALTER TABLE model_alias_history ADD COLUMN IF NOT EXISTS evidence jsonb;
COMMENT ON COLUMN model_alias_history.evidence IS 'nightscore: what the move cites (promote --evidence compare: the shadow comparison summary)';

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'nightscore_owner') THEN
        ALTER TABLE shadow_runs OWNER TO nightscore_owner;
        ALTER FUNCTION nightscore_clear_shadow_version(text, integer) OWNER TO nightscore_owner;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'nightscore_writer') THEN
        GRANT SELECT, INSERT, UPDATE ON shadow_runs TO nightscore_writer;
        GRANT EXECUTE ON FUNCTION nightscore_clear_shadow_version(text, integer) TO nightscore_writer;
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'nightscore: shadow_runs privileges not set (%); run `nightscore init` as a user that may create roles', SQLERRM;
END
$$;
