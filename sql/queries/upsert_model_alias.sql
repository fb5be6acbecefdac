INSERT INTO model_aliases (model_name, alias, version, updated_by, updated_at)
VALUES (:name, :alias, :version, :by, now())
ON CONFLICT (model_name, alias) DO UPDATE
SET version = EXCLUDED.version, updated_by = EXCLUDED.updated_by, updated_at = EXCLUDED.updated_at
