"""The regression and multiclass demo jobs, added with a spec alone, through the command a user types:
``jobs --check``, ``train``, ``score``, ``backfill``, ``evaluate`` and ``report``. What is published equals the
model's own prediction for every row."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from pipeline import db, registry
from pipeline.cli import app
from pipeline.config import PROJECT_ROOT
from pipeline.jobs import load_job
from pipeline.keys import entity_ids
from pipeline.sources import open_source
from pipeline.storage import open_store
from tests.conftest import CUSTOMERS, DAY
from tests.integration.test_cli import _env

pytestmark = pytest.mark.integration
runner = CliRunner()
JOBS = PROJECT_ROOT / "dags" / "jobs"


def _published(s, job, ds=DAY) -> pd.DataFrame:
    with db.engine(s).connect() as conn:
        return pd.read_sql(
            sa.text(
                "SELECT entity_id, score, label, scores::text AS scores, model_version FROM predictions WHERE job = :j AND ds = :d ORDER BY entity_id"
            ),
            conn,
            params={"j": job, "d": ds},
        )


def _own_prediction(s, job, ds=DAY) -> tuple[pd.Series, np.ndarray]:
    """The champion's own ``inplace_predict`` on the day's source rows as a pandas frame with categories."""
    spec = load_job(s.jobs_dir, job)
    eng = db.engine(s)
    mv = registry.resolve(eng, spec.model.name)
    booster = registry.load_booster(open_store(s), mv)
    with open_source(s, spec, ds) as stream:  # plan_choice reads Parquet; basket_value has a key of two columns
        table = pa.Table.from_batches(list(stream.batches), schema=stream.schema)
    frame = table.to_pandas()
    x = frame[spec.feature_names].copy()
    for f in spec.features:
        x[f.name] = pd.Categorical(x[f.name], categories=f.values) if f.type == "category" else x[f.name].astype("float32")
    return pd.Series(entity_ids(table, spec.key_columns).to_pylist()), booster.inplace_predict(x)


def test_specs_alone_check_and_a_misfit_is_refused_naming_the_field(local_settings, tmp_path):
    res = runner.invoke(
        app, ["jobs", "--check", str(JOBS / "basket_value.yml"), "--check", str(JOBS / "plan_choice.yml")], env=_env(local_settings)
    )
    assert res.exit_code == 0, res.output
    assert "2 spec(s) valid" in res.output
    jobs = tmp_path / "jobs"
    shutil.copytree(JOBS, jobs)
    text = (jobs / "basket_value.yml").read_text().replace("objective: reg:quantileerror", "objective: multi:softprob")
    (jobs / "basket_value.yml").write_text(text)
    res = runner.invoke(app, ["jobs", "--check", str(jobs / "basket_value.yml")], env=_env(local_settings))
    assert res.exit_code == 1
    assert "training.objective multi:softprob is for multiclass models" in " ".join(res.output.split())


def test_regression_job_publishes_the_models_quantiles_and_bands(local_settings):
    s = local_settings
    res = runner.invoke(app, ["score", "--job", "basket_value", "--ds", DAY.isoformat()], env=_env(s))
    assert res.exit_code == 0, res.output
    pub = _published(s, "basket_value")
    assert len(pub) == CUSTOMERS
    keys, own = _own_prediction(s, "basket_value")
    own = pd.DataFrame(own, index=keys.to_numpy(), columns=["0.1", "0.5", "0.9"]).loc[pub["entity_id"]]
    np.testing.assert_allclose(pub["score"].to_numpy(), own["0.5"].to_numpy(), atol=1e-6)
    quantiles = pd.DataFrame([json.loads(x) for x in pub["scores"]])[["0.1", "0.5", "0.9"]]
    np.testing.assert_allclose(quantiles.to_numpy(), own.to_numpy(), atol=1e-4 * np.abs(own.to_numpy()).max())
    spec = load_job(s.jobs_dir, "basket_value")
    expected = ["low" if v < 40 else "medium" if v < 120 else "high" for v in pub["score"]]
    assert pub["label"].tolist() == expected
    assert spec.decision.bands and pub["score"].min() < 40 < 120 < pub["score"].max()  # every band is exercised
    # a rerun of the day gives the same rows
    res = runner.invoke(app, ["score", "--job", "basket_value", "--ds", DAY.isoformat()], env=_env(s))
    assert res.exit_code == 0, res.output
    again = _published(s, "basket_value")
    pd.testing.assert_frame_equal(again.drop(columns="scores"), pub.drop(columns="scores"))


def test_multiclass_job_publishes_the_chosen_class_and_every_probability(local_settings):
    s = local_settings
    res = runner.invoke(
        app, ["backfill", "--job", "plan_choice", "--start", (DAY - timedelta(days=1)).isoformat(), "--end", DAY.isoformat()], env=_env(s)
    )
    assert res.exit_code == 0, res.output
    spec = load_job(s.jobs_dir, "plan_choice")
    classes = list(spec.decision.classes)
    for ds in (DAY - timedelta(days=1), DAY):
        pub = _published(s, "plan_choice", ds)
        assert len(pub) == CUSTOMERS
        keys, own = _own_prediction(s, "plan_choice", ds)
        own = pd.DataFrame(own, index=keys.to_numpy(), columns=classes).loc[pub["entity_id"]]
        probs = pd.DataFrame([json.loads(x) for x in pub["scores"]])
        assert sorted(probs.columns) == sorted(classes)  # jsonb keeps its keys in its own order
        probs = probs[classes]
        np.testing.assert_allclose(probs.to_numpy(), own.to_numpy(), atol=1e-6)
        np.testing.assert_allclose(pub["score"].to_numpy(), own.max(axis=1).to_numpy(), atol=1e-6)
        assert pub["label"].tolist() == own.idxmax(axis=1).tolist()
        assert set(pub["label"]) == set(classes)  # the demo's four plans are all chosen for someone


def test_train_evaluate_and_report_by_kind(local_settings, tmp_path):
    s = local_settings
    env = _env(s)
    for job in ("basket_value", "plan_choice"):
        res = runner.invoke(app, ["score", "--job", job, "--ds", DAY.isoformat()], env=env)
        assert res.exit_code == 0, res.output
    # another window, promoted only if better on the kind's metric
    res = runner.invoke(
        app, ["train", "--job", "basket_value", "--end", (DAY - timedelta(days=2)).isoformat(), "--promote", "if_better"], env=env
    )
    assert res.exit_code == 0, res.output
    out = " ".join(res.output.split())
    assert "registered basket_value_xgb v2" in out and "pinball" in out and "RMSE" in out
    res = runner.invoke(
        app, ["train", "--job", "plan_choice", "--end", (DAY - timedelta(days=2)).isoformat(), "--promote", "never"], env=env
    )
    assert res.exit_code == 0, res.output
    assert "accuracy" in res.output and "log loss" in res.output
    # evaluation on the outcomes known so far, recorded by kind
    for job, metric in (("basket_value", "rmse"), ("plan_choice", "accuracy")):
        res = runner.invoke(app, ["evaluate", "--job", job, "--ds", DAY.isoformat(), "--early"], env=env)
        assert res.exit_code == 0, res.output
        with db.engine(s).connect() as conn:
            row = conn.execute(
                sa.text("SELECT kind, metrics, rows_labelled FROM evaluations WHERE job = :j AND ds = :d"), {"j": job, "d": DAY}
            ).one()
        assert row.kind == load_job(s.jobs_dir, job).model.kind and row.rows_labelled == CUSTOMERS
        assert 0 < row.metrics[metric]
        page = tmp_path / f"{job}.html"
        res = runner.invoke(app, ["report", "--job", job, "--days", "3", "--end", DAY.isoformat(), "--out", str(page)], env=env)
        assert res.exit_code == 0, res.output
        html = page.read_text()
        assert ("confusion" in html.lower()) if job == "plan_choice" else ("residual" in html.lower())


def _swap_lines(text: str, a: str, b: str) -> str:
    lines = text.splitlines()
    i, j = (next(k for k, line in enumerate(lines) if key in line) for key in (a, b))
    lines[i], lines[j] = lines[j], lines[i]
    return "\n".join(lines) + "\n"


def test_a_spec_changed_under_its_model_is_refused_and_the_published_day_kept(local_settings, tmp_path):
    """The model was trained for four classes; a spec that now lists three (or reorders the features) cannot be
    scored with it: the run fails naming the difference, and the day published before stays as it was."""
    s = local_settings
    env = _env(s)
    res = runner.invoke(app, ["score", "--job", "plan_choice", "--ds", DAY.isoformat()], env=env)
    assert res.exit_code == 0, res.output
    before = _published(s, "plan_choice")
    jobs = tmp_path / "jobs"
    shutil.copytree(JOBS, jobs)
    spec = (jobs / "plan_choice.yml").read_text()
    for changed, message in (
        (
            spec.replace("classes: [basic, standard, premium, cancel]", "classes: [basic, standard, premium]"),
            "the model has 4 classes; decision.classes lists 3",
        ),
        (_swap_lines(spec, "name: tenure_months", "name: monthly_spend"), "the model's features are in another order"),
    ):
        (jobs / "plan_choice.yml").write_text(changed)
        res = runner.invoke(app, ["score", "--job", "plan_choice", "--ds", DAY.isoformat()], env={**env, "NIGHTSCORE_JOBS_DIR": str(jobs)})
        assert res.exit_code != 0
        said = " ".join(res.output.split())
        assert "does not fit job 'plan_choice'" in said and message in said, said
        pd.testing.assert_frame_equal(_published(s, "plan_choice"), before)
