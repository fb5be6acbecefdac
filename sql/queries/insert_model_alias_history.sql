-- insert_model_alias_history
INSERT INTO model_alias_history (model_name, alias, from_version, to_version, changed_by, reason)
VALUES (:n, :a, :f, :t, :b, :r)
