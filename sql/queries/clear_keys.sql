-- clear_keys
-- Delete the rows of the given text keys from a loading table (a retried Parquet shard); returns how many.
SELECT nightscore_clear_keys(:name, CAST(:keys AS text[]))
