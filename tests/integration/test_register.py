"""``nightscore model register``: models trained outside nightscore, handed over as files, scored exactly as
their own XGBoost scores them; and every file or model that must be refused, refused with the registry unchanged."""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
import zlib
from datetime import timedelta

import numpy as np
import pyarrow as pa
import pytest
import sqlalchemy as sa
import yaml
from typer.testing import CliRunner

from pipeline import db, registry
from pipeline.cli import app
from pipeline.features import to_matrix
from pipeline.jobs import load_job
from pipeline.run import score_partition
from pipeline.storage import open_store
from pipeline.train import load_window
from tests.conftest import CUSTOMERS, DAY
from tests.integration.test_cli import _env

pytestmark = pytest.mark.integration
runner = CliRunner()
END = DAY - timedelta(days=1)  # the reference window ends the day before the scored one


def _frame(table, names):
    """The rows as a data scientist hands them to XGBoost: numbers as they come, categories as pandas makes
    them (sorted: basic, premium, standard; not churn.yml's basic, standard, premium)."""
    df = table.select(names).to_pandas()
    for name in names:
        if pa.types.is_string(table.schema.field(name).type):
            df[name] = df[name].astype("category")
    return df


def _outside_model(settings, *, objective="binary:logistic", names=None, change=None, **params):
    """A model trained by hand on the job's training rows, outside nightscore."""
    import xgboost as xgb

    spec = load_job(settings.jobs_dir, "churn")
    table = load_window(settings, spec, END - timedelta(days=13), END + timedelta(days=1))
    df = _frame(table, names or spec.feature_names)
    if change:
        change(df)
    y = table.column("churned").to_numpy(zero_copy_only=False).astype(np.float32)
    if objective.startswith("multi") and params["num_class"] > 2:  # made-up classes beyond churned's two
        y = (np.arange(len(y)) % params["num_class"]).astype(np.float32)
    params = {"objective": objective, "max_depth": 4, "eta": 0.3, "tree_method": "hist", "max_cat_to_onehot": 1, "nthread": 2, **params}
    return xgb.train(params, xgb.DMatrix(df, label=y, enable_categorical=True), 15)


def _save(booster, folder, how):
    """The model as a ``how`` file in ``folder``: ubj, json, sklearn-json (the wrapper's save_model) or mlflow."""
    if how in ("ubj", "json"):
        booster.save_model(folder / f"model.{how}")
        return folder / f"model.{how}"
    if how == "sklearn-json":
        booster.set_attr(scikit_learn=json.dumps({"_estimator_type": "classifier", "classes_": [0, 1], "n_classes_": 2}))
        booster.save_model(folder / "clf.json")
        booster.set_attr(scikit_learn=None)
        return folder / "clf.json"
    mlflow = folder / "churn_model"
    mlflow.mkdir()
    (mlflow / "model.xgb").write_bytes(bytes(booster.save_raw("ubj")))  # MLflow's default name
    mlmodel = {
        "artifact_path": "model",
        "flavors": {
            "python_function": {"data": "model.xgb", "loader_module": "mlflow.xgboost", "python_version": "3.11.9"},
            "xgboost": {
                "code": None,
                "data": "model.xgb",
                "model_class": "xgboost.core.Booster",
                "model_format": "xgb",
                "xgb_version": "3.2.0",
            },
        },
        "mlflow_version": "2.17.0",
        "run_id": "5f1e0c9a2b7d4e6f8a9b0c1d2e3f4a5b",
    }
    (mlflow / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    return mlflow


def _register(settings, *args, jobs_dir=None):
    env = _env(settings, **({"NIGHTSCORE_JOBS_DIR": str(jobs_dir)} if jobs_dir else {}))
    return runner.invoke(app, ["model", "register", *args], env=env)


def _published(settings) -> dict[str, float]:
    with db.engine(settings).connect() as conn:
        rows = conn.execute(sa.text("SELECT entity_id, score FROM predictions WHERE job = 'churn' AND ds = :d"), {"d": DAY}).all()
    return {r.entity_id: r.score for r in rows}


def _own_scores(settings, booster) -> tuple[dict[str, float], float]:
    """What the model itself predicts for the scored day's rows, from a DataFrame (XGBoost codes the categories);
    and how far off scores coded by churn.yml's value order would be (what was published before)."""
    spec = load_job(settings.jobs_dir, "churn")
    with db.adbc_connect(settings) as conn, conn.cursor() as cur:
        cur.execute(spec.source_sql(DAY))
        table = cur.fetch_arrow_table()
    p = booster.inplace_predict(_frame(table, spec.feature_names))
    by_spec_order = booster.inplace_predict(to_matrix(table, spec), validate_features=False)
    keys = [str(k) for k in table.column("customer_id").to_pylist()]
    return dict(zip(keys, p.tolist(), strict=True)), float(np.max(np.abs(by_spec_order - p)))


@pytest.mark.parametrize("how", ["json", "ubj", "sklearn-json", "mlflow"])
def test_a_model_trained_outside_scores_as_it_scores_itself(local_settings, tmp_path, how):
    booster = _outside_model(local_settings)
    assert booster.get_categories(export_to_arrow=True).to_arrow()  # it keeps its categories
    path = _save(booster, tmp_path, how)
    res = _register(local_settings, "--job", "churn", str(path), "--promote", "--end", END.isoformat(), "--note", "from the lab")
    assert res.exit_code == 0, res.output
    assert "plan: coded as the model learned it (basic, premium, standard)" in res.output
    assert f"registered churn_xgb v2 from {path.name} ({how})" in res.output and "churn_xgb@champion: v1 → v2" in res.output
    assert "AUC" in res.output

    state = score_partition(local_settings, "churn", DAY)
    assert state.model_version == 2 and state.counts["published"] == CUSTOMERS
    (own, off), published = _own_scores(local_settings, booster), _published(local_settings)
    assert off > 0.01  # coding by the spec's order would be wrong: the test tells the two apart
    assert published.keys() == own.keys() and len(own) == CUSTOMERS
    worst = max(abs(published[k] - own[k]) for k in own)
    assert worst <= 1e-6, f"published scores differ from the model's own by up to {worst}"


def test_model_list_shows_where_a_registered_version_came_from(local_settings, tmp_path):
    path = _save(_outside_model(local_settings), tmp_path, "json")
    res = _register(local_settings, "--job", "churn", str(path), "--end", END.isoformat(), "--days", "7", "--note", "from the lab")
    assert res.exit_code == 0, res.output
    assert "to score with it: nightscore model promote churn_xgb 2" in res.output
    eng = db.engine(local_settings)
    assert registry.aliases(eng, "churn_xgb")[("churn_xgb", "champion")] == 1  # not promoted without --promote

    res = runner.invoke(app, ["model", "list", "churn_xgb", "--json"], env=_env(local_settings))
    assert res.exit_code == 0, res.output
    v1, v2 = json.loads(res.output)
    assert v1["origin"]["how"] == "trained" and v1["registered"] is False
    assert v2["registered"] is True and v2["kind"] == "binary"
    assert v2["origin"] == {
        "how": "registered",
        "file": "model.json",
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "format": "json",
        "mlflow_run_id": None,
        "registered_by": v2["created_by"],
        "note": "from the lab",
    }
    assert v2["metrics"]["reference_rows"] == 7 * CUSTOMERS and 0.5 < v2["metrics"]["auc"] <= 1
    assert v2["training_window"]["reference_start"] == str(END - timedelta(days=6)) and v2["training_window"]["reference_end"] == str(END)
    manifest = json.loads(open_store(local_settings).get_bytes("models/churn_xgb/v2/manifest.json"))
    assert set(manifest["reference"]) == {"score", "features", "contributions"} and manifest["format"] == "ubj"

    res = runner.invoke(app, ["model", "list"], env=_env(local_settings, COLUMNS="80"))
    assert res.exit_code == 0, res.output
    assert (
        "trained" in res.output
        and "file model.json" in res.output
        and f"ref {str(END - timedelta(days=6))[2:]}..{str(END)[2:]}" in res.output
    )
    assert res.output.count("AUC 0.") == 2 and "nan" not in res.output and "ne..ne" not in res.output


def test_the_same_model_again_registers_nothing(local_settings, tmp_path):
    booster = _outside_model(local_settings)
    first = _register(local_settings, "--job", "churn", str(_save(booster, tmp_path, "json")), "--end", END.isoformat())
    assert first.exit_code == 0, first.output
    again = _register(local_settings, "--job", "churn", str(_save(booster, tmp_path, "ubj")), "--end", END.isoformat())
    assert again.exit_code == 0, again.output
    assert "model.ubj is byte-identical to the registered churn_xgb v2: nothing registered" in again.output
    assert "nightscore model promote churn_xgb 2" in again.output
    assert [mv.version for mv in registry.list_versions(db.engine(local_settings), "churn_xgb")] == [1, 2]


def test_a_window_without_rows_registers_without_metrics_or_drift(local_settings, tmp_path):
    path = _save(_outside_model(local_settings), tmp_path, "ubj")
    res = _register(local_settings, "--job", "churn", str(path), "--end", "2024-01-31")
    assert res.exit_code == 0, res.output
    assert "returned no rows for 2024-01-11..2024-01-31" in res.output and "no drift reference" in res.output
    mv = registry.get_version(db.engine(local_settings), "churn_xgb", 2)
    assert mv.metrics == {"reference_rows": 0, "labelled_rows": 0}
    res = runner.invoke(app, ["model", "list", "churn_xgb"], env=_env(local_settings, COLUMNS="80"))
    assert "no metrics" in res.output and "(no labelled rows)" in res.output


@pytest.mark.parametrize(
    ("kind", "objective", "extra", "metric"),
    [("multiclass", "multi:softprob", {"num_class": 2}, "logloss"), ("regression", "reg:squarederror", {}, "rmse")],
)
def test_other_kinds_register_and_score_as_they_score_themselves(local_settings, tmp_path, kind, objective, extra, metric):
    decision = {"classes": ["stay", "churn"]} if kind == "multiclass" else {}
    jobs = _job_copy(tmp_path, model={"name": f"churn_{kind}", "kind": kind}, decision=decision)
    s = local_settings.with_overrides(jobs_dir=jobs)
    booster = _outside_model(s, objective=objective, **extra)  # churned as the label (multiclass: 0 stay, 1 churn)
    res = _register(s, "--job", "churn", str(_save(booster, tmp_path, "ubj")), "--promote", "--end", END.isoformat(), jobs_dir=jobs)
    assert res.exit_code == 0, res.output
    assert f"registered churn_{kind} v1" in res.output and f"churn_{kind}@champion: v1" in res.output
    mv = registry.get_version(db.engine(s), f"churn_{kind}", 1)
    assert mv.kind == kind and mv.metrics[metric] is not None and mv.registered
    assert score_partition(s, "churn", DAY).model_version == 1
    (own, _), published = _own_scores(s, booster), _published(s)
    if kind == "multiclass":  # the published score is the chosen class's probability
        own = {k: max(v) for k, v in own.items()}
    assert published.keys() == own.keys() and max(abs(published[k] - own[k]) for k in own) <= 1e-6


class _Boom:
    """Unpickling this creates ``path``: the test proves the file is never unpickled."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _job_copy(tmp_path, **changes):
    """A jobs folder holding a copy of the churn job with top-level ``changes`` to its spec."""
    source = load_job(_env_jobs(), "churn").spec_dir
    jobs = tmp_path / "jobs"
    jobs.mkdir(exist_ok=True)
    for path in source.glob("churn*"):
        shutil.copy(path, jobs / path.name)
    spec = yaml.safe_load((jobs / "churn.yml").read_text())
    spec.update(changes)
    (jobs / "churn.yml").write_text(yaml.safe_dump(spec))
    return jobs


def _multiclass_jobs(tmp_path):
    """The churn job as a multiclass job of three classes."""
    return _job_copy(tmp_path, model={"name": "churn_xgb", "kind": "multiclass"}, decision={"classes": ["stay", "churn", "pause"]})


def _env_jobs():
    from pipeline.config import PROJECT_ROOT

    return PROJECT_ROOT / "dags" / "jobs"


def _other_categories(df):
    df["region"] = df["region"].cat.rename_categories({"west": "central"})


def _plan_as_codes(df):
    df["plan"] = df["plan"].cat.codes.astype("float32")


REFUSALS = {
    "pickle": (lambda s, d: _write(d / "model.pkl", pickle.dumps(_Boom(d / "unpickled"))), "model.pkl is a pickle or joblib file"),
    "joblib-like": (lambda s, d: _write(d / "model.dat", zlib.compress(pickle.dumps(_Boom(d / "unpickled")))), "model.dat is a zlib-compressed file"),
    "truncated": (lambda s, d: _write(d / "model.ubj", bytes(_outside_model(s).save_raw("ubj"))[:300]), "is corrupt or truncated"),
    "corrupt": (lambda s, d: _write(d / "model.json", bytes(_outside_model(s).save_raw("json")).replace(b'"trees"', b'"tre', 1)), "is corrupt or truncated"),
    "feature order": (lambda s, d: _save(_outside_model(s, names=load_job(_env_jobs(), "churn").feature_names[::-1]), d, "json"), "the model's features are in another order"),
    "numeric for category": (lambda s, d: _save(_outside_model(s, change=_plan_as_codes), d, "json"), "feature plan: the model treats it as numeric (float), the spec as category"),
    "category set": (lambda s, d: _save(_outside_model(s, change=_other_categories), d, "json"), "the model has ['central'] the spec lacks"),
    "regression for binary": (lambda s, d: _save(_outside_model(s, objective="reg:squarederror"), d, "json"), "the model's objective reg:squarederror is for regression models; the spec's model.kind is binary"),
    "class count": (lambda s, d: _save(_outside_model(s, objective="multi:softprob", num_class=4), d, "json"), "the model has 4 classes; decision.classes lists 3"),
}  # fmt: skip


def _write(path, data):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refusals_leave_the_registry_unchanged(local_settings, tmp_path, case):
    make, said = REFUSALS[case]
    path = make(local_settings, tmp_path)
    jobs = _multiclass_jobs(tmp_path) if case == "class count" else None
    eng = db.engine(local_settings)
    before = (registry.list_versions(eng), registry.aliases(eng))
    res = _register(local_settings, "--job", "churn", str(path), "--promote", "--end", END.isoformat(), jobs_dir=jobs)
    assert res.exit_code == 1, res.output
    text = " ".join(res.output.split())
    assert said in text and "Fix:" in text and "Traceback" not in text
    assert (registry.list_versions(eng), registry.aliases(eng)) == before
    assert not open_store(local_settings).exists("models/churn_xgb/v2/model.ubj")
    assert not (tmp_path / "unpickled").exists()
    if case in ("pickle", "joblib-like"):
        assert 'model.save_model("model.ubj")' in text
