-- create_loading_table
-- The run's loading table in nightscore_staging, shaped like predictions, with the day's CHECK and the
-- model kind's range check on score.
SELECT nightscore_create_loading_table(:name, :job, CAST(:ds AS date), :kind)
