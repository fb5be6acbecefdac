"""Performance estimated before labels (CBPE): the expected AUC against its O(n²) definition, ties included; on
simulated calibrated days the estimate lands within 0.01 of the realized AUC (the project's own AUC) on every
day, and the expected confusion counts within their noise; miscalibrated scores are caught and flagged."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.estimate import (
    apply_map,
    calibration_error,
    calibration_map,
    estimate_scores,
    expected_auc,
    expected_confusion,
    holdout_checks,
    pav,
    premise,
)
from pipeline.train import auc

pytestmark = pytest.mark.unit
DAYS = 10
ROWS = 20_000


def _churn(**estimate):
    """The demo churn spec with its evaluation.estimate set as given."""
    from pipeline.config import PROJECT_ROOT
    from pipeline.jobs import load_job

    spec = load_job(PROJECT_ROOT / "dags" / "jobs", "churn")
    rules = spec.evaluation.estimate.model_copy(update=estimate)
    return spec.model_copy(update={"evaluation": spec.evaluation.model_copy(update={"estimate": rules})})


def _expected_auc_by_pairs(p: np.ndarray, s: np.ndarray) -> float:
    """The definition: every ordered pair i != j weighted p_i (1 - p_j), ranked right 1, tied 0.5."""
    w = p[:, None] * (1 - p)[None, :]
    np.fill_diagonal(w, 0.0)
    right = (s[:, None] > s[None, :]) + 0.5 * (s[:, None] == s[None, :])
    return float((w * right).sum() / w.sum())


@pytest.mark.parametrize("seed", range(8))
def test_expected_auc_matches_the_pairwise_definition_ties_included(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 300))
    s = np.round(rng.uniform(size=n), int(rng.integers(1, 3)))  # one or two decimals: many ties
    p = rng.uniform(size=n) if seed % 2 else s  # probabilities apart from the ranking scores, or the scores themselves
    assert expected_auc(p, s) == pytest.approx(_expected_auc_by_pairs(p, s), abs=1e-12)


def test_expected_auc_edge_cases():
    assert expected_auc(np.array([0.3])) is None  # no pair
    assert expected_auc(np.zeros(5)) is None and expected_auc(np.ones(5)) is None  # nothing can be negative, or positive
    assert expected_auc(np.array([0.0, 1.0])) == 1.0  # the positive is certain and ranked first
    assert expected_auc(np.full(4, 0.5)) == 0.5  # all tied


def _day(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A calibrated day: scores from one of several shapes, each row's outcome drawn as Bernoulli(score)."""
    rng = np.random.default_rng(1000 + seed)
    a, b = [(2, 5), (1, 3), (0.5, 0.5), (3, 3), (1, 8), (2, 2), (0.7, 1.5), (4, 2), (1.5, 4), (1, 1)][seed]
    p = rng.beta(a, b, ROWS)
    return p, (rng.uniform(size=ROWS) < p).astype(np.int8)


def test_on_calibrated_days_the_estimated_auc_is_within_001_of_the_realized_on_every_day():
    errors = []
    for seed in range(DAYS):
        p, y = _day(seed)
        est = estimate_scores(p, 0.5)
        errors.append(est["auc"] - auc(y, p))
    print("estimated - realized AUC per day:", [round(e, 4) for e in errors])
    assert sum(abs(e) <= 0.01 for e in errors) == DAYS, errors


def test_on_calibrated_days_the_expected_confusion_counts_match_the_realized_within_their_noise():
    for seed in range(DAYS):
        p, y = _day(seed)
        decided = p >= 0.5
        got = expected_confusion(p, 0.5)
        realized = {
            "expected_tp": (decided & (y == 1)).sum(),
            "expected_fp": (decided & (y == 0)).sum(),
            "expected_fn": (~decided & (y == 1)).sum(),
            "expected_tn": (~decided & (y == 0)).sum(),
        }
        for name, count in realized.items():
            side = decided if name in ("expected_tp", "expected_fp") else ~decided
            sd = float(np.sqrt((p[side] * (1 - p[side])).sum()))  # a sum of Bernoulli draws
            assert abs(got[name] - count) <= 4 * sd + 1, (seed, name, got[name], count, sd)
        assert sum(got[k] for k in realized) == pytest.approx(ROWS)
        tp, fp, fn = realized["expected_tp"], realized["expected_fp"], realized["expected_fn"]
        assert got["precision"] == pytest.approx(tp / (tp + fp), abs=0.02) and got["recall"] == pytest.approx(tp / (tp + fn), abs=0.02)
        assert got["accuracy"] == pytest.approx(float(((p >= 0.5) == (y == 1)).mean()), abs=0.02)


def test_miscalibrated_scores_have_a_large_calibration_error_and_the_map_repairs_the_estimate():
    p, y = _day(0)
    assert calibration_error(y, p) < 0.02  # calibrated
    cubed = p**3  # the same ranking, far too low
    shifted = np.clip(p + 0.2, 0, 1)  # far too high
    for bad in (cubed, shifted):
        error = calibration_error(y, bad)
        assert error > 0.1, error
        # the estimate from such scores is off; through the holdout's map it is right again
        naive = estimate_scores(bad, 0.5)["auc"]
        cmap = calibration_map(y, bad)
        mapped = estimate_scores(bad, 0.5, cmap)["auc"]
        assert abs(naive - auc(y, bad)) > 0.02 and abs(mapped - auc(y, bad)) < 0.01, (naive, mapped, auc(y, bad))
    # a spec's thresholds mark the model unreliable unless the map is used
    spec = _churn(use_calibration_map=False)
    holdout = {"calibration_error": calibration_error(y, cubed), **holdout_checks(y, cubed)}
    judged = premise(spec, holdout)
    assert judged.calibrated is False and "calibration_warn" in judged.why and judged.cmap is None
    assert premise(spec, {"calibration_error": 0.01}).calibrated is True  # a version without the AUC gap: not held against it
    assert premise(spec, {}).calibrated is None
    judged = premise(_churn(use_calibration_map=True), holdout)
    assert judged.cmap is holdout["calibration_map"] and judged.calibrated and judged.why == "" and abs(judged.auc_gap) < 0.02


def test_scores_sharper_than_the_outcomes_pass_the_decile_calibration_and_fail_the_auc_gap():
    """An over-fit model's scores: right on average in each decile, but spread wider than the outcomes (noise
    in the logit), so that the expected AUC from them is too high. The holdout's own estimate shows it."""
    rng = np.random.default_rng(5)
    p = rng.beta(1, 12, 21_000)
    y = (rng.uniform(size=len(p)) < p).astype(np.int8)
    sharp = 1 / (1 + np.exp(-(np.log(p / (1 - p)) + rng.normal(0, 0.5, len(p)))))
    checks = holdout_checks(y, sharp)
    assert calibration_error(y, sharp) < 0.05  # the decile check alone lets it through
    assert checks["estimate_auc_gap"] > 0.03 and abs(checks["estimate_auc_gap_mapped"]) < 0.01, checks
    judged = premise(_churn(use_calibration_map=False), {"calibration_error": calibration_error(y, sharp), **checks})
    assert judged.calibrated is False and "auc_gap_warn" in judged.why
    calibrated = holdout_checks(y, p)
    assert abs(calibrated["estimate_auc_gap"]) < 0.01 and abs(calibrated["estimate_auc_gap_mapped"]) < 0.01


def test_the_calibration_map_is_monotone_and_small():
    rng = np.random.default_rng(3)
    p = rng.uniform(size=5_000)
    y = (rng.uniform(size=5_000) < p**2).astype(np.int8)
    cmap = calibration_map(y, p)
    assert cmap is not None and len(cmap["score"]) <= 50 and sum(cmap["rows"]) == 5_000
    assert np.all(np.diff(cmap["score"]) > 0) and np.all(np.diff(cmap["rate"]) >= 0)
    assert np.all(np.diff(apply_map(cmap, np.linspace(0, 1, 101))) >= 0)
    assert pav(np.array([1.0, 3.0, 2.0, 4.0]), np.ones(4)).tolist() == [1.0, 2.5, 2.5, 4.0]


def test_a_million_calibrated_scores_estimate_the_day_their_labels_then_realize():
    """A day's worth of scores (their speed is measured by make bench, not here): labels drawn from the
    scores themselves realize an AUC within 0.002 of the estimate, and confusion counts within 5 standard
    deviations of the expected ones."""
    rng = np.random.default_rng(0)
    p = rng.beta(2, 5, 1_000_000)
    y = (rng.random(len(p)) < p).astype(np.int8)
    est = estimate_scores(rng.permutation(p), 0.5)
    assert abs(est["auc"] - auc(y, p)) < 0.002
    decided = p >= 0.5
    sd = np.sqrt(float((p * (1 - p))[decided].sum()))
    assert abs(est["expected_tp"] - int(y[decided].sum())) < 5 * sd
    assert abs(est["expected_fp"] - int((1 - y[decided]).sum())) < 5 * sd
