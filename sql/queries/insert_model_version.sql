INSERT INTO model_versions (model_name, version, artifact_uri, sha256, features, metrics, training_window, xgboost_version, created_by, kind, origin)
VALUES (:name, :version, :uri, :sha, CAST(:features AS jsonb), CAST(:metrics AS jsonb), CAST(:window AS jsonb), :xgb, :by, :kind,
        CAST(:origin AS jsonb))
