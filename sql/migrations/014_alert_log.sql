-- Alert routing (issue #25): every alert (a failed or late day, a quarantine share, drift, performance, a
-- training outcome) is recorded here once, whether it was sent or held back, and why: the same alert for the
-- same day is sent once; a job spec's alerts.rules may hold a kind of alert back below a level, within a
-- cooldown, or until drift has lasted some days in a row. The metrics count alerts from this table.

CREATE TABLE IF NOT EXISTS alert_log (
    alert_id    bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job         text        NOT NULL,
    ds          date,
    kind        text        NOT NULL CHECK (kind IN ('failed', 'late', 'quarantine', 'drift', 'performance', 'training')),
    level       text        NOT NULL CHECK (level IN ('info', 'warn', 'alert')),
    summary     text        NOT NULL,
    detail      jsonb,                      -- what crossed which threshold, the run, the links
    sent_to     text[]      NOT NULL DEFAULT '{}',  -- webhook, email: where it went
    held_back   text,                       -- why it was not sent (NULL: sent, or no channel configured)
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS alert_log_job_kind ON alert_log (job, kind, created_at DESC);

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'nightscore_owner') THEN
        ALTER TABLE alert_log OWNER TO nightscore_owner;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'nightscore_writer') THEN
        GRANT SELECT, INSERT ON alert_log TO nightscore_writer;
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'nightscore: alert_log privileges not set (%); run `nightscore init` as a user that may create roles', SQLERRM;
END
$$;
