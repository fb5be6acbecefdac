-- list_alias_moves
-- Every move of a model's aliases (or of one alias), oldest first, with what each cites.
SELECT id, model_name, alias, from_version, to_version, changed_by, reason, changed_at, evidence
FROM model_alias_history
WHERE model_name = :n AND (CAST(:a AS text) IS NULL OR alias = :a)
ORDER BY id
