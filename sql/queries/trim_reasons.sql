-- trim_reasons
-- explain.max_rows: keep the reasons of the day's :max highest-scoring rows (ties by entity) in the loading table.
SELECT nightscore_trim_reasons(:name, :max)
