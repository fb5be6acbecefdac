-- insert_model_alias_history
-- One move of an alias, with what it cites (evidence: NULL, or e.g. promote --evidence compare's summary).
INSERT INTO model_alias_history (model_name, alias, from_version, to_version, changed_by, reason, evidence)
VALUES (:n, :a, :f, :t, :b, :r, CAST(:e AS jsonb))
