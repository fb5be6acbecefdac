SELECT model_name, version, artifact_uri, sha256, features, metrics, training_window, xgboost_version, created_by, created_at, kind, origin
FROM model_versions
WHERE CAST(:name AS text) IS NULL OR model_name = :name
ORDER BY model_name, version
