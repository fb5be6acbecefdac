"""Delayed-label metrics and grading by model kind (pipeline.evaluate_kinds), the chosen classes' drift, the
report's kind-dependent parts and the Prometheus export, against definitions computed here by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline import drift, evaluate_kinds, report_kinds
from pipeline.errors import NightscoreError
from pipeline.jobs import JobSpec

pytestmark = pytest.mark.unit
CLASSES = ["basic", "plus", "pro"]


def _spec(kind: str, **evaluation) -> JobSpec:
    extra = {
        "binary": {},
        "multiclass": {"decision": {"classes": CLASSES}},
        "regression": {},
    }[kind]
    training = {"sql": "t.sql", "label": "y"}
    if kind == "regression" and evaluation.pop("quantiles", False):
        training.update(objective="reg:quantileerror", params={"quantile_alpha": [0.1, 0.5, 0.9]})
    raw = {
        "name": "j",
        "entity_key": "id",
        "source": {"sql": "s.sql"},
        "features": [{"name": "x", "type": "float"}],
        "model": {"name": "m", "kind": kind},
        "training": training,
        "evaluation": {"sql": "o.sql", "min_labelled": 10, **evaluation},
        **extra,
    }
    return JobSpec.model_validate(raw)


def _probs(rng, n: int, k: int) -> np.ndarray:
    p = rng.random((n, k)) ** 3
    return p / p.sum(axis=1, keepdims=True)


# ---- metrics -------------------------------------------------------------------------------------------


def test_multiclass_day_matches_the_definitions():
    rng = np.random.default_rng(5)
    probs = _probs(rng, 3_000, 3)
    y = np.array([rng.choice(3, p=p) for p in probs])  # outcomes drawn from the probabilities
    m = evaluate_kinds.multiclass_day(y, probs, CLASSES)
    chosen = probs.argmax(axis=1)
    conf = np.zeros((3, 3), dtype=int)
    for a, c in zip(y, chosen, strict=True):
        conf[a, c] += 1
    assert m["confusion"] == conf.tolist() and m["classes"] == CLASSES
    assert m["logloss"] == pytest.approx(-np.mean(np.log(probs[np.arange(len(y)), y])), abs=1e-6)
    assert m["accuracy"] == pytest.approx(np.trace(conf) / len(y), abs=1e-6)
    f1 = [2 * conf[i, i] / (conf[i].sum() + conf[:, i].sum()) for i in range(3)]
    assert m["macro_f1"] == pytest.approx(np.mean(f1), abs=1e-6)
    assert m["recall"] == pytest.approx({c: conf[i, i] / conf[i].sum() for i, c in enumerate(CLASSES)}, abs=1e-6)
    assert m["predicted_share"] == pytest.approx({c: conf[:, i].sum() / len(y) for i, c in enumerate(CLASSES)}, abs=1e-6)
    empty = evaluate_kinds.multiclass_day(np.array([], dtype=np.int64), np.empty((0, 3)), CLASSES)
    assert empty["accuracy"] is None and empty["confusion"] == [[0] * 3] * 3


def test_regression_day_matches_the_definitions():
    rng = np.random.default_rng(6)
    y = rng.normal(50, 10, 4_000)
    median = y + rng.normal(2, 4, 4_000)  # biased by 2: the residuals' mean is about -2
    raw = np.column_stack([median - 5, median, median + 5])
    m = evaluate_kinds.regression_day(y, raw, (0.1, 0.5, 0.9))
    err = y - median
    assert m["rmse"] == pytest.approx(np.sqrt(np.mean(err**2)), abs=1e-5)
    assert m["mae"] == pytest.approx(np.mean(np.abs(err)), abs=1e-5)
    assert m["r2"] == pytest.approx(1 - np.sum(err**2) / np.sum((y - y.mean()) ** 2), abs=1e-6)
    pinball = np.mean([np.mean(np.maximum(a * (y - raw[:, j]), (a - 1) * (y - raw[:, j]))) for j, a in enumerate((0.1, 0.5, 0.9))])
    assert m["pinball"] == pytest.approx(pinball, abs=1e-5)
    assert m["coverage"] == pytest.approx(np.mean((y >= median - 5) & (y <= median + 5)), abs=1e-6)
    assert m["coverage_expected"] == pytest.approx(0.8) and m["quantiles"] == [0.1, 0.5, 0.9]
    # predicted against actual by decile of the prediction
    bins = m["by_decile"]
    assert len(bins) == 10 and all(b["rows"] == 400 for b in bins)
    order = np.argsort(median)
    top = order[-400:]
    assert bins[-1]["mean_predicted"] == pytest.approx(median[top].mean(), abs=1e-5)
    assert bins[-1]["mean_actual"] == pytest.approx(y[top].mean(), abs=1e-5)
    # residuals: every row counted (the tails in the end bins), the bias as their mean
    r = m["residuals"]
    assert sum(r["counts"]) == 4_000 and len(r["edges"]) == len(r["counts"]) + 1
    assert r["mean"] == pytest.approx(err.mean(), abs=1e-5) and r["mean"] == pytest.approx(-2, abs=0.3)
    assert r["sd"] == pytest.approx(err.std(), abs=1e-5)
    single = evaluate_kinds.regression_day(y, median, ())
    assert "pinball" not in single and single["rmse"] == m["rmse"]


def test_the_published_scores_are_read_in_the_spec_order_and_gaps_are_refused():
    texts = pd.Series(['{"plus": 0.2, "basic": 0.7, "pro": 0.1}', '{"pro": 1, "basic": 0, "plus": 0}'])
    assert evaluate_kinds.scores_matrix(texts, CLASSES, "here").tolist() == [[0.7, 0.2, 0.1], [0.0, 0.0, 1.0]]
    with pytest.raises(NightscoreError, match=r"lack \['pro'\] in 1 rows"):
        evaluate_kinds.scores_matrix(pd.Series(['{"basic": 1, "plus": 0}', '{"basic": 0, "plus": 0, "pro": 1}']), CLASSES, "here")
    with pytest.raises(NightscoreError, match="1 published rows have no scores"):
        evaluate_kinds.scores_matrix(pd.Series(['{"basic": 1}', None]), CLASSES, "here")
    assert evaluate_kinds.quantile_keys(pd.Series([None, '{"0.9": 3, "0.1": 1, "0.5": 2}'])) == ["0.1", "0.5", "0.9"]
    assert evaluate_kinds.quantile_keys(pd.Series([None, None])) == []


def test_day_metrics_read_each_kind_from_the_published_columns():
    day = pd.DataFrame(
        {
            "score": [0.7, 0.6, 12.0],
            "label": ["basic", "plus", None],
            "scores": ['{"basic": 0.7, "plus": 0.2, "pro": 0.1}', '{"basic": 0.3, "plus": 0.6, "pro": 0.1}', '{"basic": 0.1, "plus": 0.2, "pro": 0.7}'],
        }
    )
    m = evaluate_kinds.day_metrics(_spec("multiclass"), day, np.array([0, 2, 2]))
    assert m["confusion"] == [[1, 0, 0], [0, 0, 0], [0, 1, 1]] and m["accuracy"] == pytest.approx(2 / 3, abs=1e-6)
    quantiles = pd.DataFrame({"score": [10.0, 20.0], "label": [None, None], "scores": ['{"0.1": 8, "0.5": 10, "0.9": 12}', '{"0.1": 15, "0.5": 20, "0.9": 25}']})
    m = evaluate_kinds.day_metrics(_spec("regression", quantiles=True), quantiles, np.array([13.0, 19.0]))
    assert m["coverage"] == 0.5 and m["rmse"] == pytest.approx(np.sqrt((9 + 1) / 2), abs=1e-6) and m["quantiles"] == [0.1, 0.5, 0.9]
    plain = pd.DataFrame({"score": [10.0, 20.0], "label": [None, None], "scores": [None, None]})
    m = evaluate_kinds.day_metrics(_spec("regression"), plain, np.array([13.0, 19.0]))
    assert "coverage" not in m and m["mae"] == pytest.approx(2.0)
    binary = pd.DataFrame({"score": [0.9, 0.2, 0.6, 0.1], "label": ["positive", "negative", "positive", "negative"], "scores": [None] * 4})
    m = evaluate_kinds.day_metrics(_spec("binary"), binary, np.array([1, 0, 0, 0]))
    assert m["auc"] == 1.0 and m["decided_positive"] == 2 and m["precision"] == 0.5


# ---- grading -------------------------------------------------------------------------------------------


def test_each_kind_is_graded_by_its_own_comparisons():
    multi = _spec("multiclass")
    levels, level = evaluate_kinds.grade(multi, {"logloss": 0.66, "accuracy": 0.70}, {"logloss": 0.60, "accuracy": 0.80}, 100)
    assert levels == {"logloss_rise": {"value": 0.06, "level": "warn"}, "accuracy_drop": {"value": 0.1, "level": "alert"}} and level == "alert"
    reg = _spec("regression", quantiles=True)
    levels, level = evaluate_kinds.grade(reg, {"rmse": 1.2, "coverage": 0.78, "pinball": 0.3}, {"rmse": 1.0, "coverage": 0.80}, 100)
    assert levels["rmse_rise"] == {"value": pytest.approx(0.2), "level": "warn"}  # 20% worse: between 10% and 25%
    assert levels["coverage_drop"] == {"value": pytest.approx(0.02), "level": "ok"} and level == "warn"
    # a holdout without coverage (an older model): the quantiles' nominal span instead
    levels, _ = evaluate_kinds.grade(reg, {"rmse": 1.0, "coverage": 0.62, "coverage_expected": 0.8, "pinball": 0.3}, {"rmse": 1.0}, 100)
    assert levels["coverage_drop"] == {"value": pytest.approx(0.18), "level": "alert"} and levels["rmse_rise"]["value"] == 0
    # a single-value regression model has no coverage to compare; a holdout without an RMSE, nothing to grade
    levels, level = evaluate_kinds.grade(_spec("regression"), {"rmse": 3.0}, {}, 100)
    assert levels == {"rmse_rise": {"value": None, "level": "ok"}} and level == "ok"
    binary = _spec("binary")
    levels, level = evaluate_kinds.grade(binary, {"auc": 0.70, "logloss": 0.40, "calibration_error": 0.01}, {"auc": 0.80, "logloss": 0.38}, 100)
    assert set(levels) == {"auc_drop", "logloss_rise", "calibration_error"} and levels["auc_drop"]["level"] == "alert" and level == "alert"
    # too few labelled rows: recorded, not graded
    assert evaluate_kinds.grade(multi, {"logloss": 3.0, "accuracy": 0.1}, {"logloss": 0.6, "accuracy": 0.8}, 9)[1] == "insufficient"


def test_the_line_by_kind_shows_the_holdout_beside_the_day():
    multi = evaluate_kinds.summary("multiclass", {"logloss": 0.61, "accuracy": 0.7, "macro_f1": 0.66}, {"logloss": 0.6, "accuracy": 0.72})
    assert multi == "log loss 0.6100 (holdout 0.6000), accuracy 0.7000 (holdout 0.7200), macro F1 0.6600"
    reg = evaluate_kinds.summary("regression", {"rmse": 1.5, "mae": 1.2, "r2": 0.88, "pinball": 0.38, "coverage": 0.781, "coverage_expected": 0.8}, {})
    assert reg == "RMSE 1.5000, MAE 1.2000, R² 0.8800, pinball 0.3800, coverage 0.781 of 0.80 expected"
    assert evaluate_kinds.summary("regression", {"rmse": None}, {"rmse": 2}).startswith("RMSE n/a (holdout 2.0000)")
    assert evaluate_kinds.summary("binary", {"auc": 0.8}, {"auc": 0.81}).startswith("AUC 0.8000 (holdout 0.8100)")


# ---- the chosen classes' drift -------------------------------------------------------------------------


def test_chosen_class_drift_is_psi_and_js_of_the_shares():
    from scipy.spatial.distance import jensenshannon

    from pipeline.jobs.spec import Drift

    ref = {"values": CLASSES, "shares": [0.5, 0.3, 0.2]}
    counts = [300, 300, 400]
    rows = {m["metric"]: m for m in drift.class_metrics(ref, counts, Drift())}
    day = np.array(counts) / 1000
    e = np.array(ref["shares"])
    assert rows["psi"]["value"] == pytest.approx(np.sum((day - e) * np.log(day / e)), abs=1e-6) and rows["psi"]["level"] == "warn"  # 0.24: between 0.1 and 0.25
    m = (day + e) / 2
    js = np.sqrt(0.5 * np.sum(day * np.log2(day / m)) + 0.5 * np.sum(e * np.log2(e / m)))
    assert rows["js"]["value"] == pytest.approx(js, abs=1e-6) == pytest.approx(jensenshannon(e, day, base=2), abs=1e-6)
    assert {r["feature"] for r in rows.values()} == {"predicted_class"}
    same = drift.class_metrics(ref, [500, 300, 200], Drift())
    assert all(r["value"] == pytest.approx(0, abs=1e-6) and r["level"] == "ok" for r in same)
    assert drift.class_metrics(ref, [0, 0, 0], Drift()) == []
    import pyarrow as pa

    assert drift.class_counts(pa.array(["pro", "basic", "pro", None]), CLASSES) == [1, 0, 2]


# ---- reports and Prometheus ----------------------------------------------------------------------------


def test_the_performance_section_takes_each_kind_and_older_rows_without_metrics():
    from datetime import date

    old_binary = {"ds": date(2026, 1, 1), "level": "ok", "auc": 0.8, "logloss": 0.4, "calibration_error": 0.02, "holdout": {"auc": 0.81}, "metrics": None}
    perf = report_kinds.performance([old_binary], "binary")
    assert perf["rows"][0]["m"]["auc"] == 0.8 and perf["rows"][0]["kind"] == "binary" and "<svg" in perf["svg"]
    conf = {"classes": CLASSES, "confusion": [[5, 1, 0], [2, 6, 2], [0, 0, 4]], "accuracy": 0.75, "logloss": 0.6}
    rows = [
        {"ds": date(2026, 1, d), "level": "ok", "kind": "multiclass", "holdout": {}, "metrics": conf, "model_version": 1} for d in (1, 2)
    ]
    perf = report_kinds.performance([*rows, old_binary], "multiclass")
    c = perf["confusion"]
    assert c["days"] == 2 and c["rows"] == 40 and [[x["n"] for x in r] for r in c["cells"]] == [[10, 2, 0], [4, 12, 4], [0, 0, 8]]
    assert c["recall"] == pytest.approx([10 / 12, 12 / 20, 1.0]) and perf["other_kinds"] == 1
    reg = {"rmse": 1.0, "coverage": 0.8, "by_decile": [{"mean_predicted": 1, "mean_actual": 1.1}, {"mean_predicted": 2, "mean_actual": 1.9}]}
    reg["residuals"] = {"edges": [-1, 0, 1], "counts": [3, 4], "mean": 0.1, "sd": 0.5}
    perf = report_kinds.performance([{"ds": date(2026, 1, 3), "level": "warn", "kind": "regression", "holdout": {"rmse": 0.9}, "metrics": reg}], "regression")
    assert perf["quantile"] and perf["decile_svg"].startswith("<svg") and perf["residual_svg"].startswith("<svg")
    assert report_kinds.performance([], "regression")["rows"] == []
    # a model the registry no longer has, or a registered one's reference window
    assert report_kinds.model_facts(None, "m", 1, "regression") == {"kind": "regression", "origin": "", "window": "", "headline": ""}
    assert report_kinds.tick(0.12345) == "0.123" and report_kinds.tick(12345.6) == "12,346"


def test_prometheus_gets_each_kinds_metrics_under_the_same_names():
    from prometheus_client import CollectorRegistry, Gauge, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from pipeline.metrics import _evaluation

    def export(evaluation):
        reg = CollectorRegistry()
        _evaluation(lambda name, doc, labels=(): Gauge(name, doc, ("scoring_job", *labels), registry=reg), "j", evaluation)
        text = generate_latest(reg).decode()
        return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in text_string_to_metric_families(text) for s in f.samples}

    multi = {"kind": "multiclass", "metrics": {"accuracy": 0.7, "logloss": 0.6, "recall": {"pro": 0.5}}, "levels": {"accuracy_drop": {"value": 0.02}}}
    got = export(multi)
    assert got[("nightscore_evaluation_accuracy_ratio", (("scoring_job", "j"),))] == 0.7
    assert got[("nightscore_evaluation_class_recall_ratio", (("class", "pro"), ("scoring_job", "j")))] == 0.5
    assert got[("nightscore_evaluation_accuracy_drop", (("scoring_job", "j"),))] == 0.02
    binary = {"kind": "binary", "metrics": None, "levels": {}, "auc": 0.8, "logloss": None, "brier": 0.1}
    binary.update(decision_precision=0.5, decision_recall=0.4, calibration_error=0.01)
    got = export(binary)
    assert got[("nightscore_evaluation_auc", (("scoring_job", "j"),))] == 0.8
    assert got[("nightscore_evaluation_decision_recall_ratio", (("scoring_job", "j"),))] == 0.4
    assert ("nightscore_evaluation_logloss", (("scoring_job", "j"),)) not in got
