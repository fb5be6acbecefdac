-- Published predictions: one row per (job, day, entity), replaced per (job, ds) as a unit.
CREATE TABLE IF NOT EXISTS predictions (
    job            text             NOT NULL,
    ds             date             NOT NULL,
    entity_id      text             NOT NULL,
    score          double precision NOT NULL CHECK (score >= 0 AND score <= 1),
    label          text             NOT NULL,
    model_name     text             NOT NULL,
    model_version  integer          NOT NULL,
    run_id         uuid             NOT NULL,
    scored_at      timestamptz      NOT NULL,
    PRIMARY KEY (job, ds, entity_id)
);

COMMENT ON TABLE predictions IS 'nightscore: published predictions; each (job, ds) is replaced atomically by one run';
COMMENT ON COLUMN predictions.label IS 'decision label from the job spec threshold';
COMMENT ON COLUMN predictions.run_id IS 'scoring_runs.run_id of the run that published this row';

-- Per job and entity, the row from the latest published day.
CREATE OR REPLACE VIEW predictions_latest AS
SELECT DISTINCT ON (job, entity_id)
       job, ds, entity_id, score, label, model_name, model_version, run_id, scored_at
FROM predictions
ORDER BY job, entity_id, ds DESC;

-- Staging tables for publishing live apart from the published objects.
CREATE SCHEMA IF NOT EXISTS nightscore_staging;
