INSERT INTO evaluations (job, ds, run_id, model_name, model_version, rows_published, rows_labelled, positives,
                         auc, logloss, brier, decision_precision, decision_recall, calibration_error,
                         calibration, holdout, levels, level, kind, metrics, evaluated_at)
VALUES (:job, :ds, CAST(:run_id AS uuid), :model_name, :model_version, :rows_published, :rows_labelled, :positives,
        :auc, :logloss, :brier, :decision_precision, :decision_recall, :calibration_error,
        CAST(:calibration AS jsonb), CAST(:holdout AS jsonb), CAST(:levels AS jsonb), :level, :kind, CAST(:metrics AS jsonb), now())
ON CONFLICT (job, ds) DO UPDATE SET
    run_id = EXCLUDED.run_id, model_name = EXCLUDED.model_name, model_version = EXCLUDED.model_version,
    rows_published = EXCLUDED.rows_published, rows_labelled = EXCLUDED.rows_labelled, positives = EXCLUDED.positives,
    auc = EXCLUDED.auc, logloss = EXCLUDED.logloss, brier = EXCLUDED.brier,
    decision_precision = EXCLUDED.decision_precision, decision_recall = EXCLUDED.decision_recall,
    calibration_error = EXCLUDED.calibration_error, calibration = EXCLUDED.calibration, holdout = EXCLUDED.holdout,
    levels = EXCLUDED.levels, level = EXCLUDED.level, kind = EXCLUDED.kind, metrics = EXCLUDED.metrics, evaluated_at = now()
