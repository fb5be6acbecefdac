-- lock_model_alias
-- The version an alias points at, its row locked until the move is recorded.
SELECT version FROM model_aliases WHERE model_name = :n AND alias = :a FOR UPDATE
