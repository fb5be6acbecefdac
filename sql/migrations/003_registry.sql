-- Model registry: immutable versions, movable aliases, and every alias move ever made.
CREATE TABLE IF NOT EXISTS model_versions (
    model_name       text        NOT NULL,
    version          integer     NOT NULL CHECK (version > 0),
    artifact_uri     text        NOT NULL,
    sha256           text        NOT NULL,
    features         jsonb       NOT NULL,
    metrics          jsonb       NOT NULL,
    training_window  jsonb       NOT NULL,
    xgboost_version  text        NOT NULL,
    created_by       text        NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model_name, version)
);

CREATE TABLE IF NOT EXISTS model_aliases (
    model_name  text        NOT NULL,
    alias       text        NOT NULL,
    version     integer     NOT NULL,
    updated_by  text        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model_name, alias),
    FOREIGN KEY (model_name, version) REFERENCES model_versions (model_name, version)
);

CREATE TABLE IF NOT EXISTS model_alias_history (
    id            bigserial   PRIMARY KEY,
    model_name    text        NOT NULL,
    alias         text        NOT NULL,
    from_version  integer,
    to_version    integer     NOT NULL,
    changed_by    text        NOT NULL,
    reason        text        NOT NULL,
    changed_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS model_alias_history_lookup ON model_alias_history (model_name, alias, id DESC);
