SELECT coalesce(max(version), 0) + 1 FROM model_versions WHERE model_name = :name
