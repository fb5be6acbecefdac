-- Data quality reports (#5): where the rendered GX Data Docs of a run are, and the quarantined rows' values.
ALTER TABLE scoring_runs ADD COLUMN IF NOT EXISTS data_docs_uri text;
ALTER TABLE quarantined_rows ADD COLUMN IF NOT EXISTS row_values jsonb;  -- the refused row(s) of that key, as extracted
