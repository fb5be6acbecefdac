"""The delayed-label metrics against their definitions, computed here by hand."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.evaluate import calibration_by_decile, classification_metrics

pytestmark = pytest.mark.unit


def test_metrics_match_their_definitions():
    rng = np.random.default_rng(3)
    p = rng.random(2_000)
    y = (rng.random(2_000) < p).astype(np.int8)  # calibrated by construction
    m = classification_metrics(y, p, threshold=0.5)
    pos, neg = p[y == 1], p[y == 0]
    assert m["auc"] == pytest.approx(((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (len(pos) * len(neg)), abs=1e-6)
    assert m["logloss"] == pytest.approx(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)), abs=1e-6)
    assert m["brier"] == pytest.approx(np.mean((p - y) ** 2), abs=1e-6)
    decided = p >= 0.5
    assert m["precision"] == pytest.approx((decided & (y == 1)).sum() / decided.sum(), abs=1e-6)
    assert m["recall"] == pytest.approx((decided & (y == 1)).sum() / (y == 1).sum(), abs=1e-6)
    assert m["calibration_error"] < 0.05  # calibrated scores: small gaps in every decile


def test_miscalibrated_scores_show_in_the_deciles():
    rng = np.random.default_rng(4)
    p = rng.random(5_000)
    y = (rng.random(5_000) < p / 2).astype(np.int8)  # the outcomes happen half as often as the scores say
    bins = calibration_by_decile(y, p)
    assert len(bins) == 10 and sum(b["rows"] for b in bins) == 5_000
    assert all(b["rows"] == 500 for b in bins)
    assert [b["mean_score"] for b in bins] == sorted(b["mean_score"] for b in bins)
    top = bins[-1]
    assert top["mean_score"] > 0.9 and top["outcome_rate"] == pytest.approx(top["mean_score"] / 2, abs=0.06)
    assert classification_metrics(y, p, 0.5)["calibration_error"] == pytest.approx(np.mean(p) / 2, abs=0.03)


def test_one_class_only_has_no_auc_but_the_rest():
    m = classification_metrics(np.zeros(50, dtype=np.int8), np.linspace(0.01, 0.5, 50), 0.5)
    assert m["auc"] is None and m["logloss"] is not None and m["recall"] == 0.0
    assert classification_metrics(np.array([], dtype=np.int8), np.array([]), 0.5)["calibration"] == []
