SELECT model_name, version, artifact_uri, sha256, features, metrics, training_window, xgboost_version, created_by, created_at, kind, origin
FROM model_versions
WHERE model_name = :name AND version = :version
