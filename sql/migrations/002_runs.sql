-- One row per run attempt, failed ones included.
CREATE TABLE IF NOT EXISTS scoring_runs (
    run_id                uuid        PRIMARY KEY,
    job                   text        NOT NULL,
    ds                    date        NOT NULL,
    status                text        NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    dry_run               boolean     NOT NULL DEFAULT false,
    model_name            text,
    model_version         integer,
    model_sha256          text,
    rows_extracted        bigint,
    rows_valid            bigint,
    rows_quarantined      bigint,
    rows_scored           bigint,
    rows_published        bigint,
    stage_seconds         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    validation_success    boolean,
    validation_summary    jsonb,
    validation_report_uri text,
    artifacts_uri         text,
    manifest_uri          text,
    drift                 jsonb,
    error                 text,
    airflow_run_id        text,
    started_at            timestamptz NOT NULL DEFAULT now(),
    finished_at           timestamptz
);
CREATE INDEX IF NOT EXISTS scoring_runs_job_ds ON scoring_runs (job, ds, started_at DESC);

-- Rows refused by validation, with every reason they were refused.
CREATE TABLE IF NOT EXISTS quarantined_rows (
    run_id     uuid   NOT NULL REFERENCES scoring_runs (run_id) ON DELETE CASCADE,
    job        text   NOT NULL,
    ds         date   NOT NULL,
    entity_id  text   NOT NULL,
    reasons    jsonb  NOT NULL,
    PRIMARY KEY (run_id, entity_id)
);
CREATE INDEX IF NOT EXISTS quarantined_rows_job_ds ON quarantined_rows (job, ds);
