-- list_model_alias_history
-- Every move of an alias, oldest first.
SELECT to_version, reason FROM model_alias_history WHERE model_name = :n AND alias = :a ORDER BY id
