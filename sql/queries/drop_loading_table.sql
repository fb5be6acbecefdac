-- drop_loading_table
SELECT nightscore_drop_loading_table(:name)
