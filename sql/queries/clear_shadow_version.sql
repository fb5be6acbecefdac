-- clear_shadow_version
-- Remove one shadow model's rows from the run's shadow loading table (it failed in some shard); returns how many.
SELECT nightscore_clear_shadow_version(:name, :version)
