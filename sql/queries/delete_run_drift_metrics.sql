-- An earlier try's drift rows of a run, replaced by this try's.
DELETE FROM drift_metrics WHERE run_id = CAST(:r AS uuid)
