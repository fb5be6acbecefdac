"""The champion-against-shadow statistics (pipeline.compare) on small arrays and simulated data, and how the
spec and ``--shadow`` name shadow models."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from pipeline import compare
from pipeline.train import auc

pytestmark = pytest.mark.unit


def _labels(scores: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    return np.where(scores >= threshold, "positive", "negative").astype(object)


def test_identical_scores_agree_fully_with_psi_zero():
    rng = np.random.default_rng(1)
    s = rng.uniform(size=5_000)
    ids = np.array([f"c{i}" for i in range(len(s))], dtype=object)
    out = compare.paired_stats(ids, s, s.copy(), _labels(s), _labels(s))
    assert out["rows"] == 5_000 and out["agreement"] == 1.0
    assert out["pearson"] == pytest.approx(1.0) and out["spearman"] == pytest.approx(1.0)
    assert out["psi"] == 0.0
    assert out["diff"] == {"mean": 0.0, "std": 0.0, "p5": 0.0, "p50": 0.0, "p95": 0.0, "max_abs": 0.0}
    assert out["flipped"] == {"count": 0, "share": 0.0, "moves": {}, "sample": []}


def test_flipped_rows_are_counted_and_the_largest_moves_sampled_first():
    champion = np.array([0.10, 0.40, 0.45, 0.60, 0.90, 0.55])
    shadow = np.array([0.10, 0.70, 0.52, 0.30, 0.95, 0.56])  # rows 1, 2 flip up, row 3 flips down
    ids = np.array(["a", "b", "c", "d", "e", "f"], dtype=object)
    out = compare.paired_stats(ids, champion, shadow, _labels(champion), _labels(shadow), sample=2)
    f = out["flipped"]
    assert f["count"] == 3 and f["share"] == pytest.approx(0.5) and out["agreement"] == pytest.approx(0.5)
    assert f["moves"] == {"negative→positive": 2, "positive→negative": 1}
    assert sorted(f["sample"]) == ["b", "d"]  # the moves of 0.30 before c's of 0.07
    assert out["diff"]["mean"] == pytest.approx(np.mean(shadow - champion), abs=1e-6)  # rounded to 6 digits
    assert out["diff"]["p50"] == pytest.approx(np.median(shadow - champion), abs=1e-6)


def test_correlation_and_psi_of_different_models():
    rng = np.random.default_rng(2)
    a = rng.normal(size=20_000)
    b = a + rng.normal(scale=0.5, size=a.size)
    pearson, spearman = compare.correlations(a, b)
    assert pearson == pytest.approx(1 / np.sqrt(1.25), abs=0.01)
    assert 0.85 < spearman < 0.9
    assert compare.correlations(np.ones(5), np.arange(5.0)) == (None, None)  # a constant model: undefined
    assert compare.score_psi(a, a + 1.0) > 0.5  # a shifted distribution
    assert compare.score_psi(a, rng.permutation(a)) == 0.0  # the same values, another order
    small = compare.score_psi(a, rng.normal(size=a.size))
    assert 0 <= small < 0.01  # the same distribution, another sample


def test_labels_absent_for_a_regression_without_bands():
    s = np.array([1.0, 2.0, 3.0])
    out = compare.paired_stats(np.array(["a", "b", "c"], dtype=object), s, s + 1, np.array([None] * 3), np.array([None] * 3))
    assert out["agreement"] is None and out["flipped"] is None and out["diff"]["mean"] == pytest.approx(1.0)


def test_weighted_auc_with_unit_weights_is_the_rank_auc_ties_included():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, size=2_000)
    p = np.round(rng.uniform(size=2_000) + 0.3 * y, 2)  # many ties
    assert compare.weighted_auc(np.ones((1, len(y))), y, p)[0] == pytest.approx(auc(y, p), abs=1e-12)
    # a weight of 2 is the row drawn twice
    w = rng.integers(0, 3, size=len(y))
    rows = np.repeat(np.arange(len(y)), w)
    assert compare.weighted_auc(w[None, :].astype(float), y, p)[0] == pytest.approx(auc(y[rows], p[rows]), abs=1e-12)


def test_resamples_draw_n_rows_each():
    weights = list(compare.resample_weights(1_000, 250, np.random.default_rng(0), cells=60_000))
    assert [w.shape[0] for w in weights] == [60, 60, 60, 60, 10]
    assert all((w.sum(axis=1) == 1_000).all() for w in weights)


def test_identical_models_differ_by_exactly_zero():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, size=3_000).astype(float)
    p = np.clip(0.3 * y + rng.uniform(size=3_000) * 0.7, 0, 1)
    out = compare.realized("binary", y, p, p.copy(), resamples=300)
    for name in ("auc", "logloss"):
        m = out["metrics"][name]
        assert m["diff"] == 0.0 and m["ci"] == [0.0, 0.0] and m["champion"] == m["shadow"]
    assert out["metrics"]["auc"]["champion"] == pytest.approx(auc(y, p), abs=1e-6)


def test_the_paired_bootstrap_interval_covers_the_true_auc_difference():
    """Binormal scores: positives N(mu, 1), negatives N(0, 1), so AUC = Phi(mu / sqrt 2) exactly. Two models
    on the same rows (correlated noise): the 95% interval of the difference covers the true one about 95%
    of the time, and is far narrower than the unpaired intervals would be."""
    mu_a, mu_b = 1.0, 1.3
    true = norm.cdf(mu_b / np.sqrt(2)) - norm.cdf(mu_a / np.sqrt(2))
    covered, widths = 0, []
    trials = 40
    for seed in range(trials):
        rng = np.random.default_rng(100 + seed)
        y = rng.integers(0, 2, size=2_000)
        shared = rng.normal(size=y.size)
        own = rng.normal(size=y.size)
        a = mu_a * y + shared
        b = mu_b * y + 0.8 * shared + 0.6 * own  # unit variance, correlated with a
        m = compare.realized("binary", y.astype(float), a, b, resamples=400, seed=seed)["metrics"]["auc"]
        lo, hi = m["ci"]
        covered += lo <= true <= hi
        widths.append(hi - lo)
        assert lo <= m["diff"] <= hi
    assert covered >= 0.85 * trials
    assert np.median(widths) < 0.05


def test_mean_type_metrics_by_kind():
    rng = np.random.default_rng(5)
    y = rng.normal(size=1_000)
    a, b = y + rng.normal(scale=0.5, size=y.size), y + rng.normal(scale=0.3, size=y.size)
    out = compare.realized("regression", y, a, b, resamples=200)
    rmse = out["metrics"]["rmse"]
    assert rmse["champion"] == pytest.approx(np.sqrt(np.mean((y - a) ** 2)), abs=1e-6)
    assert rmse["diff"] < 0 and rmse["ci"][1] < 0 and not rmse["higher_is_better"] and rmse["shadow_better_share"] == 1.0
    classes = rng.integers(0, 3, size=600)
    pa_ = rng.dirichlet(np.ones(3), size=600)
    pb = pa_.copy()
    pb[np.arange(600), classes] += 1.0
    pb /= pb.sum(axis=1, keepdims=True)
    m = compare.realized("multiclass", classes, pa_.max(axis=1), pb.max(axis=1), pa_, pb, resamples=200)["metrics"]
    assert m["accuracy"]["champion"] == pytest.approx(np.mean(pa_.argmax(axis=1) == classes), abs=1e-6)
    assert m["accuracy"]["shadow"] > m["accuracy"]["champion"] and m["logloss"]["shadow"] < m["logloss"]["champion"]


def test_shadow_refs_from_the_command_line():
    from pipeline.errors import UsageError
    from pipeline.shadow import parse_refs

    assert parse_refs(None) is None and parse_refs([]) is None
    assert parse_refs(["2", "challenger,v3", "2"]) == [2, "challenger", 3]
    with pytest.raises(UsageError, match="neither a version number nor an alias"):
        parse_refs(["Bad Name"])
    with pytest.raises(UsageError, match="not a version"):
        parse_refs(["0"])


@pytest.mark.parametrize(
    ("shadow", "message"),
    [
        (["champion"], r"the model it scores with cannot shadow itself"),
        ([2, "2"], r"names a model twice"),
        ([0], r"not a version"),
        (["x y"], r"neither a version number nor an alias"),
        ([1, 2, 3, 4, 5, 6], r"at most 5"),
    ],
)
def test_invalid_model_shadow_names_the_field(tmp_path, shadow, message):
    from pipeline.errors import JobSpecError
    from pipeline.jobs import load_spec
    from tests.unit.test_jobs import _write

    path = _write(tmp_path, model={"name": "churn_xgb", "shadow": shadow})
    with pytest.raises(JobSpecError, match=message) as info:
        load_spec(path)
    assert "model" in str(info.value)


def test_model_shadow_loads(tmp_path):
    from pipeline.jobs import load_spec
    from tests.unit.test_jobs import _write

    assert load_spec(_write(tmp_path, model={"name": "churn_xgb", "shadow": ["challenger", "4"]})).model.shadow == ["challenger", 4]
