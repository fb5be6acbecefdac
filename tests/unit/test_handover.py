"""Model files handed over to ``nightscore model register``: what is read, what is refused and why (no server)."""

from __future__ import annotations

import json
import pickle
import zlib
from datetime import date

import numpy as np
import pytest

from pipeline import handover, kinds
from pipeline.config import PROJECT_ROOT
from pipeline.errors import ModelError
from pipeline.jobs import load_job
from pipeline.modelfile import load, origin_format, read_model_file

pytestmark = pytest.mark.unit
SPEC = load_job(PROJECT_ROOT / "dags" / "jobs", "churn")


def _frame(n: int = 300, seed: int = 0):
    """Churn-like rows; category columns in pandas' own (sorted) order, not churn.yml's."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    cols = {}
    for f in SPEC.features:
        if f.type == "category":
            cols[f.name] = pd.Series(rng.choice(f.values, n)).astype("category")
        else:
            cols[f.name] = rng.uniform(f.min or 0, min(f.max or 100, 100), n).astype("float32")
    return pd.DataFrame(cols)


@pytest.fixture(scope="module")
def booster():
    import xgboost as xgb

    df = _frame()
    y = (df["tenure_months"] < 30).astype(int)
    return xgb.train({"objective": "binary:logistic", "max_depth": 3}, xgb.DMatrix(df, label=y, enable_categorical=True), 5)


def test_ubj_and_json_are_read_by_content(tmp_path, booster):
    booster.save_model(tmp_path / "m.ubj")
    booster.save_model(tmp_path / "m.json")
    (tmp_path / "m.bytes").write_bytes((tmp_path / "m.ubj").read_bytes())  # the name does not matter
    for name, fmt in [("m.ubj", "ubj"), ("m.json", "json"), ("m.bytes", "ubj")]:
        mf = read_model_file(tmp_path / name)
        assert mf.format == fmt and len(mf.sha256) == 64
        loaded = load(mf)
        assert origin_format(mf, loaded) == fmt and loaded.feature_names == SPEC.feature_names


def test_the_scikit_learn_wrappers_file_is_recognised(tmp_path, booster):
    import xgboost as xgb

    copy = xgb.Booster(model_file=bytearray(booster.save_raw("ubj")))
    copy.set_attr(scikit_learn=json.dumps({"_estimator_type": "classifier", "n_classes_": 2}))
    copy.save_model(tmp_path / "clf.json")
    mf = read_model_file(tmp_path / "clf.json")
    assert origin_format(mf, load(mf)) == "sklearn-json"


def test_an_mlflow_folder_is_read_through_its_mlmodel(tmp_path, booster):
    folder = tmp_path / "model"
    folder.mkdir()
    booster.save_model(folder / "model.ubj")
    (folder / "MLmodel").write_text(
        "artifact_path: model\nflavors:\n  python_function: {data: model.ubj, loader_module: mlflow.xgboost}\n"
        "  xgboost: {code: null, data: model.ubj, model_class: xgboost.core.Booster, model_format: ubj, xgb_version: 3.2.0}\n"
        "run_id: 0123abcd\n"
    )
    for given in (folder, folder / "MLmodel"):
        mf = read_model_file(given)
        assert (mf.format, mf.mlflow_run_id, mf.path.name, mf.given) == ("mlflow", "0123abcd", "model.ubj", folder)


def test_an_mlflow_folder_of_another_flavour_is_refused(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(pickle.dumps({"a": 1}))
    (folder / "MLmodel").write_text("flavors:\n  sklearn: {pickled_model: model.pkl}\n  python_function: {}\nrun_id: r1\n")
    with pytest.raises(ModelError, match=r"not of the xgboost flavour \(its flavours: sklearn, python_function\)"):
        read_model_file(folder)


REFUSED = [
    ("model.pkl", pickle.dumps({"w": [1.0]}), "is a pickle or joblib file"),
    ("model.bin", pickle.dumps({"w": [1.0]}), "is a pickle or joblib file"),  # by content
    ("model.joblib", b"anything", "is a pickle or joblib file"),  # by name
    ("model.sav", b"{}", "is a pickle or joblib file"),
    ("model.z", zlib.compress(pickle.dumps([1, 2])), "zlib-compressed"),
    ("model.gz", b"\x1f\x8b\x08\x00rest", "gzip-compressed"),
    ("model.zip", b"PK\x03\x04rest", "zip archive"),
    ("model.txt", b"hello", "not an XGBoost model file"),
    ("model.xgb", b"binf\x00\x00\x00\x00", "old binary format"),
]


@pytest.mark.parametrize(("name", "data", "said"), REFUSED, ids=[name for name, _, _ in REFUSED])
def test_pickles_and_other_files_are_refused_without_being_read(tmp_path, name, data, said):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ModelError, match=said) as info:
        read_model_file(path)
    assert name in str(info.value)
    if "pickle" in said:
        assert 'model.save_model("model.ubj")' in str(info.value) and "never loads" in str(info.value)


@pytest.mark.parametrize(("suffix", "keep"), [(".ubj", 300), (".ubj", -7), (".json", 300), (".json", -2)])
def test_a_truncated_file_is_a_clear_error_not_a_crash(tmp_path, booster, suffix, keep):
    booster.save_model(tmp_path / f"full{suffix}")
    data = (tmp_path / f"full{suffix}").read_bytes()
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(data[:keep])
    with pytest.raises(ModelError, match=rf"{path}.* is corrupt or truncated: XGBoost cannot read it") as info:
        load(read_model_file(path))
    assert "Stack trace" not in str(info.value)


def test_every_problem_is_listed_in_one_error(booster):
    import xgboost as xgb

    df = _frame()[list(reversed(SPEC.feature_names))]
    df["plan"] = df["plan"].cat.codes.astype("float32")  # numeric in the model, a category in the spec
    model = xgb.train({"objective": "reg:squarederror"}, xgb.DMatrix(df, label=np.zeros(len(df)), enable_categorical=True), 2)
    problems = kinds.check_model(SPEC, kinds.model_info(model))
    mf = handover.ModelFile(SPEC.spec_path, SPEC.spec_path, b"", "json")
    with pytest.raises(ModelError) as info:
        handover.check(SPEC, mf, kinds.model_info(model))
    text = str(info.value)
    assert len(problems) > 1 and f"{len(problems)} problems: (1) " in text and "another order" in text and "reg:squarederror" in text
    handover.check(SPEC, mf, kinds.model_info(booster))  # the model trained on the contract fits


def test_the_reference_window_defaults_to_train_days_ending_at_the_latest_day():
    start, end = handover.reference_window(SPEC, date(2026, 3, 14), None)
    assert (end - start).days == SPEC.training.train_days - 1 and end == date(2026, 3, 14)
    assert handover.reference_window(SPEC, date(2026, 3, 14), 3) == (date(2026, 3, 12), date(2026, 3, 14))


def test_probe_rows_cover_every_category_and_nulls(booster):
    rows = handover.probe_rows(SPEC)
    assert set(rows.column("plan").to_pylist()) == {"basic", "standard", "premium", None}
    raw = handover.predict(SPEC, booster, rows, kinds.model_info(booster))
    assert raw.shape == (rows.num_rows,) and np.isfinite(raw).all()
