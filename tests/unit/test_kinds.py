"""Model kinds without a server: the spec's kind rules, a model's own description, the published columns and
the labels, each against a real XGBoost model trained here."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import xgboost as xgb
from pydantic import ValidationError

from pipeline import kinds
from pipeline.features import to_matrix, value_sets
from pipeline.jobs import JobSpec

pytestmark = pytest.mark.unit

BASE = {
    "name": "j",
    "entity_key": "id",
    "source": {"sql": "j.sql"},
    "features": [{"name": "x", "type": "float"}, {"name": "colour", "type": "category", "values": ["red", "green", "blue"]}],
    "model": {"name": "m"},
    "training": {"sql": "t.sql", "label": "y"},
}


def spec(**over) -> JobSpec:
    d = json.loads(json.dumps(BASE))
    for key, value in over.items():
        d[key] = {**d.get(key, {}), **value} if isinstance(value, dict) and key != "decision" else value
    return JobSpec.model_validate(d)


def refused(match: str, **over) -> None:
    with pytest.raises(ValidationError, match=match):
        spec(**over)


def test_binary_is_the_default_and_todays_specs_keep_working():
    s = spec(decision={"threshold": 0.3, "positive": "yes", "negative": "no"})
    assert s.model.kind == "binary" and kinds.objective(s.training, s.kind) == "binary:logistic"
    assert kinds.primary_metric("binary", s.training) == "auc"


def test_each_kind_refuses_an_objective_of_another_kind_naming_the_field():
    refused(
        r"training.objective multi:softprob is for multiclass models; this job's model.kind is binary",
        training={"objective": "multi:softprob"},
    )
    refused(
        r"training.objective binary:logistic is for binary models.*reg:squarederror",
        model={"kind": "regression"},
        training={"objective": "binary:logistic"},
    )
    refused(
        r"rank:pairwise is not an objective nightscore can score", model={"kind": "regression"}, training={"objective": "rank:pairwise"}
    )
    refused(r"needs training.params.quantile_alpha", model={"kind": "regression"}, training={"objective": "reg:quantileerror"})
    refused(
        r"quantile_alpha must be distinct values between 0 and 1, ascending",
        model={"kind": "regression"},
        training={"objective": "reg:quantileerror", "params": {"quantile_alpha": [0.9, 0.1]}},
    )
    refused(
        r"num_class comes from decision.classes",
        model={"kind": "multiclass"},
        decision={"classes": ["a", "b"]},
        training={"params": {"num_class": 2}},
    )
    refused(r"training.metric 'auc' is not a regression metric", model={"kind": "regression"}, training={"metric": "auc"})
    ok = spec(model={"kind": "regression"}, training={"objective": "reg:quantileerror", "params": {"quantile_alpha": [0.1, 0.5, 0.9]}})
    assert kinds.primary_metric("regression", ok.training, (0.1, 0.5, 0.9)) == "pinball"
    assert spec(model={"kind": "regression"}, training={"objective": "reg:tweedie"}).training.objective == "reg:tweedie"


def test_decisions_fit_their_kind():
    refused(r"names its classes in the model's order", model={"kind": "multiclass"})
    refused(r"decision.classes lists a class twice", model={"kind": "multiclass"}, decision={"classes": ["a", "a"]})
    refused(r"decision.classes is for multiclass models", decision={"classes": ["a", "b"]})
    refused(r"decision.threshold is for binary models", model={"kind": "regression"}, decision={"threshold": 0.2})
    refused(r"decision.bands is for regression models", decision={"bands": [{"label": "a"}]})


@pytest.mark.parametrize(
    ("bands", "match"),
    [
        ([{"label": "low", "max": 10}, {"label": "high", "min": 12}], r"a gap between 10.0 and 12.0: set min: 10.0"),
        ([{"label": "low", "max": 10}, {"label": "high", "min": 8}], r"overlaps the band before it"),
        ([{"label": "low", "max": 10}, {"label": "mid"}, {"label": "high", "min": 20}], r"only the first band may leave out min"),
        ([{"label": "low"}, {"label": "high", "min": 10}], r"only the last band may leave out max"),
        ([{"label": "a", "max": 10}, {"label": "a", "min": 10}], r"uses a label twice"),
        ([{"label": "a", "min": 5, "max": 5}], r"min 5.0 is not below max 5.0"),
    ],
)
def test_bands_with_gaps_or_overlaps_are_refused(bands, match):
    refused(match, model={"kind": "regression"}, decision={"bands": bands})


def _frame(n: int = 600, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    colour = rng.choice(["red", "green", "blue"], n)
    # pandas sorts the categories: blue, green, red; the spec lists red, green, blue
    return pd.DataFrame({"x": rng.normal(size=n).astype(np.float32), "colour": pd.Categorical(colour)})


def _train(df: pd.DataFrame, y: np.ndarray, **params) -> xgb.Booster:
    return xgb.train({"tree_method": "hist", "max_cat_to_onehot": 1, **params}, xgb.DMatrix(df, label=y, enable_categorical=True), 15)


def test_a_model_scores_by_its_own_category_codes_whatever_order_the_spec_lists():
    df = _frame()
    y = ((df["colour"] == "red").to_numpy() | (df["x"].to_numpy() > 1)).astype(int)
    booster = _train(df, y, objective="binary:logistic")
    info = kinds.model_info(booster)
    assert info.categories == {"colour": ["blue", "green", "red"]} and info.kind == "binary"
    s = spec()
    assert kinds.check_model(s, info) == []
    table = pa.Table.from_pandas(df.astype({"colour": str}))
    by_model = kinds.raw_predict(booster, to_matrix(table, s, coding=value_sets(kinds.coding(s, info))), info)
    np.testing.assert_allclose(by_model, booster.inplace_predict(df), atol=1e-6)
    by_spec_order = booster.inplace_predict(to_matrix(table, s))  # the old coding: position in the spec's values
    assert np.abs(by_spec_order - booster.inplace_predict(df)).max() > 0.1  # what used to be published silently
    assert any("in another order, which does not matter" in n for n in kinds.coding_notes(s, info))


def test_check_model_names_every_mismatch():
    df = _frame()
    y = np.arange(len(df)) % 3
    booster = _train(df, y, objective="multi:softprob", num_class=3)
    info = kinds.model_info(booster)
    problems = kinds.check_model(spec(), info)
    assert any("objective multi:softprob is for multiclass models; the spec's model.kind is binary" in p for p in problems)
    four = spec(model={"kind": "multiclass"}, decision={"classes": ["a", "b", "c", "d"]})
    assert kinds.check_model(four, info) == ["the model has 3 classes; decision.classes lists 4"]
    other = spec(
        features=[{"name": "x", "type": "float"}, {"name": "colour", "type": "category", "values": ["red", "green", "pink"]}],
        model={"kind": "multiclass"},
        decision={"classes": ["a", "b", "c"]},
    )
    (problem,) = kinds.check_model(other, info)
    assert "the model has ['blue'] the spec lacks" in problem and "the spec has ['pink'] the model never saw" in problem
    swapped = spec(features=[BASE["features"][1], BASE["features"][0]], model={"kind": "multiclass"}, decision={"classes": ["a", "b", "c"]})
    assert "in another order" in kinds.check_model(swapped, info)[0]
    numeric = spec(
        features=[{"name": "x", "type": "float"}, {"name": "colour", "type": "int"}],
        model={"kind": "multiclass"},
        decision={"classes": ["a", "b", "c"]},
    )
    assert kinds.check_model(numeric, info) == ["feature colour: the model treats it as categorical, the spec as int"]


def test_multiclass_outputs_the_chosen_class_and_every_probability():
    df = _frame()
    y = (df["colour"].cat.codes.to_numpy() + (df["x"].to_numpy() > 0)) % 3
    s = spec(model={"kind": "multiclass"}, decision={"classes": ["small", "medium", "large"]})
    for objective in ("multi:softprob", "multi:softmax"):
        booster = _train(df, y, objective=objective, num_class=3)
        info = kinds.model_info(booster)
        raw = kinds.raw_predict(
            booster, to_matrix(pa.Table.from_pandas(df.astype({"colour": str})), s, coding=value_sets(kinds.coding(s, info))), info
        )
        assert raw.shape == (len(df), 3)
        np.testing.assert_allclose(raw.sum(axis=1), 1.0, atol=1e-5)
        out = kinds.outputs(raw, s, info)
        chosen = raw.argmax(axis=1)
        assert out.label.to_pylist() == [s.decision.classes[c] for c in chosen]
        np.testing.assert_allclose(out.score, raw.max(axis=1), atol=1e-7)
        first = json.loads(out.scores[0].as_py())
        assert list(first) == ["small", "medium", "large"]
        np.testing.assert_allclose(list(first.values()), raw[0], atol=1e-6)
    softprob = _train(df, y, objective="multi:softprob", num_class=3)
    np.testing.assert_allclose(
        kinds.raw_predict(
            softprob,
            to_matrix(pa.Table.from_pandas(df.astype({"colour": str})), s, coding=value_sets(kinds.coding(s, kinds.model_info(softprob)))),
            kinds.model_info(softprob),
        ),
        softprob.inplace_predict(df),
        atol=1e-6,
    )


def test_quantile_regression_publishes_the_median_its_band_and_every_quantile():
    df = _frame()
    y = 100 + 30 * df["x"].to_numpy() + 20 * (df["colour"] == "red").to_numpy()
    booster = _train(df, y, objective="reg:quantileerror", quantile_alpha=[0.1, 0.5, 0.9])
    info = kinds.model_info(booster)
    assert info.quantiles == (0.1, 0.5, 0.9) and info.kind == "regression"
    s = spec(
        model={"kind": "regression"},
        training={"objective": "reg:quantileerror", "params": {"quantile_alpha": [0.1, 0.5, 0.9]}},
        decision={"bands": [{"label": "low", "max": 90}, {"label": "mid", "min": 90, "max": 120}, {"label": "high", "min": 120}]},
    )
    raw = kinds.raw_predict(
        booster, to_matrix(pa.Table.from_pandas(df.astype({"colour": str})), s, coding=value_sets(kinds.coding(s, info))), info
    )
    out = kinds.outputs(raw, s, info)
    np.testing.assert_allclose(out.score, booster.inplace_predict(df)[:, 1], atol=1e-5)
    expected = np.where(out.score < 90, "low", np.where(out.score < 120, "mid", "high"))
    assert out.label.to_pylist() == expected.tolist()
    row = json.loads(out.scores[3].as_py())
    assert list(row) == ["0.1", "0.5", "0.9"] and row["0.5"] == pytest.approx(out.score[3], abs=1e-4)


def test_band_labels_leave_values_outside_every_band_without_a_label():
    s = spec(model={"kind": "regression"}, decision={"bands": [{"label": "a", "min": 0, "max": 10}, {"label": "b", "min": 10, "max": 20}]})
    labels = kinds.band_labels(np.array([-1.0, 0.0, 9.99, 10.0, 19.9, 20.0, np.nan]), s.decision.bands)
    assert labels.to_pylist() == [None, "a", "a", "b", "b", None, None]
    assert kinds.band_labels(np.array([1.0]), None).to_pylist() == [None]


def test_labels_that_do_not_fit_the_kind_are_refused_with_the_values():
    multi = spec(model={"kind": "multiclass"}, decision={"classes": ["basic", "premium"]})
    assert kinds.encode_labels(pa.array(["premium", "basic"]), multi).tolist() == [1.0, 0.0]
    assert kinds.encode_labels(pa.array([1, 0], pa.int64()), multi).tolist() == [1.0, 0.0]
    with pytest.raises(kinds.LabelError, match=r"classes not in decision.classes \['basic', 'premium'\]: \['gold'\]"):
        kinds.encode_labels(pa.array(["basic", "gold"]), multi)
    with pytest.raises(kinds.LabelError, match=r"holds \[2.0\], not a class number 0..1"):
        kinds.encode_labels(pa.array([0, 2]), multi)
    reg = spec(model={"kind": "regression"})
    with pytest.raises(kinds.LabelError, match="2 values that are not finite"):
        kinds.encode_labels(pa.array([1.0, float("nan"), float("inf")]), reg)
    with pytest.raises(kinds.LabelError, match="1 rows have no label"):
        kinds.encode_labels(pa.array([1.0, None]), reg)
    with pytest.raises(kinds.LabelError, match=r"values other than 0 and 1: \[2.0\]"):
        kinds.encode_labels(pa.array([0, 2]), spec())
    with pytest.raises(kinds.LabelError, match="is string, not a number"):
        kinds.encode_labels(pa.array(["yes"]), spec())
