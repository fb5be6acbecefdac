-- create_side_table
-- The run's side loading table (<name>_reasons or <name>_shadow) in nightscore_staging, with the day's CHECK.
SELECT nightscore_create_side_table(:name, :side, :job, CAST(:ds AS date))
