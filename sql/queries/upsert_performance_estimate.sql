-- upsert_performance_estimate
-- The day's estimate before labels (pipeline/estimate.py): one row per job and day, replaced by a rerun.
INSERT INTO performance_estimates (job, ds, run_id, model_name, model_version, rows, threshold, auc, decision_precision,
                                   decision_recall, accuracy, positive_rate, expected_tp, expected_fp, expected_tn, expected_fn,
                                   holdout_auc, holdout_calibration_error, holdout_auc_gap, calibrated, why, map_used, auc_drop, level, seconds, estimated_at)
VALUES (:job, :ds, CAST(:run_id AS uuid), :model_name, :model_version, :rows, :threshold, :auc, :decision_precision,
        :decision_recall, :accuracy, :positive_rate, :expected_tp, :expected_fp, :expected_tn, :expected_fn,
        :holdout_auc, :holdout_calibration_error, :holdout_auc_gap, :calibrated, :why, :map_used, :auc_drop, :level, :seconds, now())
ON CONFLICT (job, ds) DO UPDATE SET
    run_id = EXCLUDED.run_id, model_name = EXCLUDED.model_name, model_version = EXCLUDED.model_version, rows = EXCLUDED.rows,
    threshold = EXCLUDED.threshold, auc = EXCLUDED.auc, decision_precision = EXCLUDED.decision_precision,
    decision_recall = EXCLUDED.decision_recall, accuracy = EXCLUDED.accuracy, positive_rate = EXCLUDED.positive_rate,
    expected_tp = EXCLUDED.expected_tp, expected_fp = EXCLUDED.expected_fp, expected_tn = EXCLUDED.expected_tn,
    expected_fn = EXCLUDED.expected_fn, holdout_auc = EXCLUDED.holdout_auc,
    holdout_calibration_error = EXCLUDED.holdout_calibration_error, holdout_auc_gap = EXCLUDED.holdout_auc_gap,
    calibrated = EXCLUDED.calibrated, why = EXCLUDED.why,
    map_used = EXCLUDED.map_used, auc_drop = EXCLUDED.auc_drop, level = EXCLUDED.level, seconds = EXCLUDED.seconds,
    estimated_at = now()
