-- seal_loading_table
-- Add the primary key to the loaded table (a doubled row fails it), before the swap.
SELECT nightscore_seal_loading_table(:name)
