-- A run's quarantined rows with their reasons and values (the query `nightscore runs --show` suggests)
SELECT entity_id, reasons, row_values FROM quarantined_rows WHERE run_id = :run_id
