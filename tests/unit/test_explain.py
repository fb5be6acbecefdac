"""Explanations without a server: each row's top-K reasons are XGBoost's own largest contributions, the
published row adds up to the model's margin, for every kind and both methods, against real models."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import xgboost as xgb

from pipeline import explain, kinds
from pipeline.features import to_matrix, value_sets
from pipeline.jobs.spec import Explain
from pipeline.keys import entity_ids
from tests.unit.test_kinds import spec

pytestmark = pytest.mark.unit


def _data(n: int = 800, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n).astype(np.float32)
    x[::37] = np.nan  # missing values take the default branch; their value is published as null
    return pd.DataFrame({"id": np.arange(n), "x": x, "colour": pd.Categorical(rng.choice(["red", "green", "blue"], n))})


def _booster(df: pd.DataFrame, y: np.ndarray, **params) -> xgb.Booster:
    d = xgb.DMatrix(df[["x", "colour"]], label=y, enable_categorical=True)
    return xgb.train({"tree_method": "hist", "max_cat_to_onehot": 1, **params}, d, 25)


def _explain(s, booster, df, method="approx", top=2):
    s = s.model_copy(update={"explain": Explain(top=top, method=method)})
    info = kinds.model_info(booster)
    table = pa.Table.from_pandas(df.astype({"colour": str}), preserve_index=False)
    batch = table.to_batches()[0]
    x = to_matrix(batch, s, coding=value_sets(kinds.coding(s, info)))
    raw = kinds.raw_predict(booster, x, info)
    ex = explain.Explainer(s, info, threads=2)
    out = ex.batch(booster, x, batch, raw, entity_ids(batch, s.key_columns), date(2026, 11, 1), "00000000-0000-0000-0000-000000000001")
    return s, info, x, raw, out, ex


def _margin(booster, df, **kw):
    return booster.predict(xgb.DMatrix(df[["x", "colour"]], enable_categorical=True), output_margin=True, **kw)


@pytest.mark.parametrize("method", ["approx", "exact"])
def test_binary_reasons_are_the_largest_contributions_and_the_row_adds_up_to_its_margin(method):
    df = _data()
    y = ((df["colour"] == "red").to_numpy() ^ (df["x"].fillna(0).to_numpy() > 0.5)).astype(int)
    booster = _booster(df, y, objective="binary:logistic")
    s, _info, _x, _raw, out, ex = _explain(spec(), booster, df, method=method)
    full = booster.predict(
        xgb.DMatrix(df[["x", "colour"]], enable_categorical=True), pred_contribs=True, approx_contribs=method == "approx"
    )
    margin = _margin(booster, df)
    rows = out.to_pylist()
    assert len(rows) == len(df)
    for i, row in enumerate(rows):
        reasons = json.loads(row["reasons"])
        feats = full[i, :-1]
        expected = sorted(range(2), key=lambda j: (-abs(feats[j]), j))
        assert [r["feature"] for r in reasons] == [["x", "colour"][j] for j in expected]
        assert [r["contribution"] for r in reasons] == pytest.approx([float(feats[j]) for j in expected], abs=1e-6)
        total = row["base_value"] + row["rest"] + sum(r["contribution"] for r in reasons)
        assert total == pytest.approx(float(margin[i]), abs=1e-4)
        by_name = {r["feature"]: r["value"] for r in reasons}
        assert by_name["colour"] == df["colour"].iloc[i]
        x = df["x"].iloc[i]
        assert (by_name["x"] is None) if np.isnan(x) else by_name["x"] == pytest.approx(float(x), rel=1e-6)
    assert row["explained_class"] is None
    summary = ex.summary()
    assert summary["rows"] == len(df)
    assert summary["abs_sum"]["x"] == pytest.approx(float(np.abs(full[:, 0]).sum()), rel=1e-4)


def test_top_one_of_two_leaves_the_other_feature_in_rest():
    df = _data()
    y = (df["x"].fillna(0).to_numpy() > 0).astype(int)
    booster = _booster(df, y, objective="binary:logistic")
    *_, out, _ex = _explain(spec(), booster, df, top=1)
    margin = _margin(booster, df)
    for i, row in enumerate(out.to_pylist()):
        (only,) = json.loads(row["reasons"])
        assert row["base_value"] + row["rest"] + only["contribution"] == pytest.approx(float(margin[i]), abs=1e-4)


def test_multiclass_explains_the_chosen_class():
    df = _data()
    y = (df["colour"].cat.codes.to_numpy() + (df["x"].fillna(0).to_numpy() > 0)) % 3
    s = spec(model={"kind": "multiclass"}, decision={"classes": ["small", "medium", "large"]})
    booster = _booster(df, y, objective="multi:softprob", num_class=3)
    s, _info, _x, raw, out, _ex = _explain(s, booster, df)
    chosen = raw.argmax(axis=1)
    margin = _margin(booster, df)  # (n, 3)
    for i, row in enumerate(out.to_pylist()):
        assert row["explained_class"] == ["small", "medium", "large"][chosen[i]]
        reasons = json.loads(row["reasons"])
        total = row["base_value"] + row["rest"] + sum(r["contribution"] for r in reasons)
        assert total == pytest.approx(float(margin[i, chosen[i]]), abs=1e-4)


def test_quantile_regression_explains_the_published_median():
    df = _data()
    y = 100 + 30 * df["x"].fillna(0).to_numpy() + 20 * (df["colour"] == "red").to_numpy()
    booster = _booster(df, y, objective="reg:quantileerror", quantile_alpha=[0.1, 0.5, 0.9])
    s = spec(
        model={"kind": "regression"},
        training={"objective": "reg:quantileerror", "params": {"quantile_alpha": [0.1, 0.5, 0.9]}},
    )
    *_, out, _ex = _explain(s, booster, df)
    margin = _margin(booster, df)[:, 1]
    for i, row in enumerate(out.to_pylist()):
        reasons = json.loads(row["reasons"])
        assert row["base_value"] + row["rest"] + sum(r["contribution"] for r in reasons) == pytest.approx(float(margin[i]), abs=1e-3)


def test_json_values_escape_text_and_turn_non_finite_numbers_into_null():
    text = explain._json_value(pa.array(['say "hi"', "back\\slash", None]))
    assert [json.loads(v) for v in text.to_pylist()] == ['say "hi"', "back\\slash", None]
    nums = explain._json_value(pa.array([1.5, float("nan"), float("inf"), None]))
    assert [json.loads(v) for v in nums.to_pylist()] == [1.5, None, None, None]
    assert explain._json_value(pa.array([True, False, None])).to_pylist() == ["true", "false", "null"]


def test_the_day_summary_and_the_shift_against_training():
    day = explain.merge_summaries([{"rows": 2, "abs_sum": {"a": 2.0, "b": 2.0}}, {"rows": 2, "abs_sum": {"a": 2.0, "b": 0.0}}, None])
    assert day["mean_abs"] == {"a": 1.0, "b": 0.5}
    rows = explain.shift(day, {"mean_abs": {"a": 0.5, "b": 0.5}})
    assert rows[0]["feature"] == "a" and rows[0]["share_change"] == pytest.approx(2 / 3 - 0.5)
    assert explain.merge_summaries([None]) is None


@pytest.mark.parametrize("k", [1, 3, 6, 7])
def test_top_k_takes_the_largest_first_and_breaks_ties_by_contract_order(k):
    rng = np.random.default_rng(1)
    c = rng.normal(size=(2000, 7)).astype(np.float32)
    c[:, 3] = c[:, 1]  # equal sizes: the feature listed first wins
    c[:, 5] = -c[:, 2]
    want = np.array([sorted(range(7), key=lambda j: (-abs(row[j]), j))[:k] for row in c])
    assert (explain.top_k(c, k) == want).all()
