-- create_loading_table
-- The run's loading table in nightscore_staging, shaped like predictions, with the day's CHECK.
SELECT nightscore_create_loading_table(:name, :job, CAST(:ds AS date))
