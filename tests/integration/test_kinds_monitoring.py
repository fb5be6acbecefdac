"""Monitoring by model kind on a real PostgreSQL: a quantile regression job and a four-class job, each
trained, scored, evaluated on its delayed outcomes and reported, with the metrics checked against numpy
computations made here from the tables (not the code under test); and a model registered from a file
(reference-window metrics, no holdout) whose runs still get their HTML report."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from html import unescape
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from pipeline import db, metrics
from pipeline.errors import NightscoreError
from pipeline.evaluate import alert_extra, evaluate_day
from pipeline.jobs import load_job
from pipeline.lookback import write_report
from pipeline.run import score_partition
from pipeline.storage import model_prefix, open_store
from tests.conftest import create_database, drop_database, make_settings
from tests.integration.test_cli import _env

pytestmark = pytest.mark.integration

FIRST = date(2026, 5, 1)  # the source's first day
TRAIN_END = FIRST + timedelta(days=3)  # 3 training days and 1 holdout day
SCORED = [TRAIN_END + timedelta(days=1), TRAIN_END + timedelta(days=2)]
TURNED = TRAIN_END + timedelta(days=3)  # a day whose outcomes the alert test turns round after scoring
TODAY = TURNED + timedelta(days=30)  # every day's outcomes have matured (mature_days: 7)
DAYS = 7
ROWS = 2_000
CLASSES = ["bronze", "silver", "gold", "platinum"]
QUANTILES = [0.1, 0.5, 0.9]

COMMON = """
entity_key: item_id
features:
  - {name: x1, type: float}
  - {name: x2, type: float, min: 0, max: 10}
  - {name: cat, type: category, values: [a, b, c]}
"""
REGRESSION = f"""
name: demand
source: {{sql: demand.sql}}
{COMMON}
model: {{name: demand_xgb, kind: regression}}
decision:
  bands: [{{label: low, max: 12}}, {{label: high, min: 12}}]
training:
  sql: demand_train.sql
  label: target
  train_days: 3
  holdout_days: 1
  objective: "reg:quantileerror"
  num_boost_round: 80
  params: {{quantile_alpha: {QUANTILES}, max_depth: 4, eta: 0.1}}
evaluation:
  sql: demand_outcomes.sql
  mature_days: 7
  min_labelled: 100
alerts:
  webhook_env: NIGHTSCORE_ALERT_WEBHOOK
"""
MULTICLASS = f"""
name: tier
source: {{sql: tier.sql}}
{COMMON}
model: {{name: tier_xgb, kind: multiclass}}
decision:
  classes: {CLASSES}
training:
  sql: tier_train.sql
  label: klass
  train_days: 3
  holdout_days: 1
  num_boost_round: 60
  params: {{max_depth: 4, eta: 0.2}}
evaluation:
  sql: tier_outcomes.sql
  mature_days: 7
  min_labelled: 100
alerts:
  webhook_env: NIGHTSCORE_ALERT_WEBHOOK
"""
FEATURES = "item_id, x1, x2, cat"


def _source_rows(ds: date) -> list[dict]:
    """One day of items: a value that depends on the features (regression) and a tier cut from a score (multiclass)."""
    rng = np.random.default_rng(ds.toordinal())
    x1 = rng.normal(0, 1, ROWS)
    x2 = rng.uniform(0, 10, ROWS)
    cat = rng.choice(3, ROWS)
    effect = np.array([0.0, 2.0, -2.0])[cat]
    target = 10 + 3 * x1 + 0.8 * x2 + effect + rng.normal(0, 1.5, ROWS)
    z = x1 + 0.3 * x2 + 0.5 * effect + rng.normal(0, 0.5, ROWS)
    klass = np.digitize(z, [0.6, 1.6, 2.6])
    return [
        {
            "ds": ds,
            "item_id": i + 1,
            "x1": float(x1[i]),
            "x2": float(x2[i]),
            "cat": "abc"[cat[i]],
            "target": float(target[i]),
            "klass": CLASSES[klass[i]],
        }
        for i in range(ROWS)
    ]


def _write_jobs(jobs: Path) -> None:
    jobs.mkdir(parents=True, exist_ok=True)
    (jobs / "demand.yml").write_text(REGRESSION)
    (jobs / "tier.yml").write_text(MULTICLASS)
    for name, label in (("demand", "target"), ("tier", "klass")):
        (jobs / f"{name}.sql").write_text(f"SELECT {FEATURES} FROM kinds.items WHERE ds = :ds")
        (jobs / f"{name}_train.sql").write_text(f"SELECT ds, {FEATURES}, {label} FROM kinds.items WHERE ds >= :start AND ds < :end")
        (jobs / f"{name}_outcomes.sql").write_text(f"SELECT item_id, {label} FROM kinds.items WHERE ds = :ds")


@pytest.fixture(scope="module")
def kinds_settings(pg_server, tmp_path_factory):
    """A migrated database with the items table, the two jobs' specs, and a champion of each."""
    from pipeline.train import train_model

    base = tmp_path_factory.mktemp("kinds")
    url = create_database(pg_server)
    settings = make_settings(base / "home", url, base / "artifacts", jobs_dir=base / "jobs")
    _write_jobs(settings.jobs_dir)
    eng = db.ready_engine(settings)
    with eng.begin() as conn:
        conn.execute(sa.text("CREATE SCHEMA kinds"))
        conn.execute(
            sa.text(
                "CREATE TABLE kinds.items (ds date, item_id int, x1 float8, x2 float8, cat text, target float8, klass text,"
                " PRIMARY KEY (ds, item_id))"
            )
        )
        for i in range(DAYS):
            conn.execute(
                sa.text("INSERT INTO kinds.items VALUES (:ds, :item_id, :x1, :x2, :cat, :target, :klass)"),
                _source_rows(FIRST + timedelta(days=i)),
            )
    for job in ("demand", "tier"):
        result = train_model(settings, load_job(settings.jobs_dir, job), end=TRAIN_END)
        assert result.promoted and result.version == 1, result
    yield settings
    drop_database(pg_server, url)


# ---- computed here, from the tables --------------------------------------------------------------


def _joined(settings, job: str, day: date) -> list[dict]:
    """The published rows of ``job``'s ``day`` with their outcomes, by item."""
    with db.engine(settings).connect() as conn:
        return [
            dict(r)
            for r in conn.execute(
                sa.text(
                    "SELECT p.score, p.label, p.scores, i.target, i.klass FROM predictions p JOIN kinds.items i"
                    " ON i.ds = p.ds AND i.item_id::text = p.entity_id WHERE p.job = :j AND p.ds = :d ORDER BY i.item_id"
                ),
                {"j": job, "d": day},
            ).mappings()
        ]


def _evaluation(settings, job: str, day: date) -> dict:
    with db.engine(settings).connect() as conn:
        return dict(conn.execute(sa.text("SELECT * FROM evaluations WHERE job = :j AND ds = :d"), {"j": job, "d": day}).mappings().one())


def _model_metrics(settings, name: str, version: int) -> dict:
    with db.engine(settings).connect() as conn:
        return conn.execute(
            sa.text("SELECT metrics FROM model_versions WHERE model_name = :n AND version = :v"), {"n": name, "v": version}
        ).scalar_one()


def _js(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon distance, base 2, from its definition."""
    m = (p + q) / 2

    def kl(a, b):
        return float(np.sum(np.where(a > 0, a * np.log2(np.where(a > 0, a, 1) / b), 0.0)))

    return float(np.sqrt(0.5 * kl(p, m) + 0.5 * kl(q, m)))


def _samples(text: str) -> dict:
    from prometheus_client.parser import text_string_to_metric_families

    return {(s.name, tuple(sorted(s.labels.items()))): s.value for fam in text_string_to_metric_families(text) for s in fam.samples}


def _run_report(settings, state) -> str:
    return unescape(open_store(settings).get_bytes(f"{state.prefix}/report.html").decode())


# ---- regression -------------------------------------------------------------------------------------


def test_a_quantile_regression_day_is_measured_graded_and_reported_by_its_own_metrics(kinds_settings, tmp_path, caplog):
    s, day = kinds_settings, SCORED[0]
    spec = load_job(s.jobs_dir, "demand")
    state = score_partition(s, "demand", day)
    ev = evaluate_day(s, spec, day, today=TODAY)

    rows = _joined(s, "demand", day)
    assert len(rows) == ROWS
    q = np.array([[r["scores"][f"{a:g}"] for a in QUANTILES] for r in rows])
    y = np.array([r["target"] for r in rows])
    point = q[:, 1]
    assert np.allclose(point, [r["score"] for r in rows], atol=1e-4)  # score: the median quantile
    err = y - point
    rmse = float(np.sqrt(np.mean(err**2)))
    pinball = float(np.mean([np.mean(np.maximum(a * (y - q[:, j]), (a - 1) * (y - q[:, j]))) for j, a in enumerate(QUANTILES)]))
    coverage = float(np.mean((y >= q[:, 0]) & (y <= q[:, 2])))

    row = _evaluation(s, "demand", day)
    m = row["metrics"]
    assert row["kind"] == "regression" and row["rows_labelled"] == ROWS and row["positives"] == 0
    assert row["auc"] is None and row["logloss"] is None and row["calibration"] == []  # the binary columns: binary only
    assert m["rmse"] == pytest.approx(rmse, abs=1e-5)
    assert m["mae"] == pytest.approx(float(np.mean(np.abs(err))), abs=1e-5)
    assert m["r2"] == pytest.approx(1 - float(np.sum(err**2) / np.sum((y - y.mean()) ** 2)), abs=1e-5)
    assert m["pinball"] == pytest.approx(pinball, abs=1e-5) and m["coverage"] == pytest.approx(coverage, abs=1e-6)
    assert m["coverage_expected"] == pytest.approx(0.8) and 0.7 < coverage < 0.9 and m["r2"] > 0.8  # a model that learned
    # predicted against actual by decile of prediction, and the residuals
    assert sum(b["rows"] for b in m["by_decile"]) == ROWS and len(m["by_decile"]) == 10
    low = point < np.quantile(point, 0.1)
    assert m["by_decile"][0]["mean_actual"] == pytest.approx(float(y[low].mean()), abs=1e-5)
    assert m["by_decile"][0]["mean_predicted"] == pytest.approx(float(point[low].mean()), abs=1e-5)
    assert sum(m["residuals"]["counts"]) == ROWS and m["residuals"]["mean"] == pytest.approx(float(err.mean()), abs=1e-5)
    # graded against the model's holdout: RMSE relative, coverage's drop
    holdout = _model_metrics(s, "demand_xgb", 1)
    assert row["holdout"] == holdout == ev.holdout
    assert row["levels"]["rmse_rise"]["value"] == pytest.approx(rmse / holdout["rmse"] - 1, abs=1e-5)
    assert row["levels"]["coverage_drop"]["value"] == pytest.approx(holdout["coverage"] - coverage, abs=1e-5)
    assert set(row["levels"]) == {"rmse_rise", "coverage_drop"} and row["level"] == ev.level == "ok"
    assert f"RMSE {rmse:.4f} (holdout {holdout['rmse']:.4f})" in ev.line() and "coverage" in ev.line()

    # the run report: a predicted value's distribution (values far outside [0, 1]), the model's kind
    html = _run_report(s, state)
    assert "Predicted value distribution" in html and "a regression model, trained by nightscore" in html
    assert max(state.drift["score_hist"]["edges"]) > 1 and state.drift["score_psi"] is not None
    # the job report: RMSE over time, predicted against actual, residuals
    with caplog.at_level("WARNING"):
        done = write_report(s, spec, 5, last=day, path=tmp_path / "demand.html")
    html = unescape(done.path.read_text())
    for section in ('id="predicted-vs-actual"', 'id="residuals"', "model's RMSE", f"{rmse:.4f}"):
        assert section in html, section
    assert html.count("<svg") >= 5 and "Undefined" not in html
    assert done.latest is not None and "RMSE" in done.latest and "(v1, regression)" in done.latest
    # the metrics for Prometheus: the kind's metrics under the same names as the binary ones
    metrics.export(s, "demand")
    got = _samples(metrics.textfile_path(s, "demand").read_text())
    job = (("scoring_job", "demand"),)
    assert got[("nightscore_evaluation_rmse", job)] == pytest.approx(m["rmse"])
    assert got[("nightscore_evaluation_interval_coverage_ratio", job)] == pytest.approx(m["coverage"])
    assert got[("nightscore_evaluation_rmse_rise", job)] == pytest.approx(row["levels"]["rmse_rise"]["value"])
    assert ("nightscore_evaluation_auc", job) not in got


# ---- multiclass -------------------------------------------------------------------------------------


def test_a_multiclass_day_gets_its_confusion_matrix_class_drift_and_report(kinds_settings, tmp_path):
    from typer.testing import CliRunner

    from pipeline.cli import app

    s = kinds_settings
    spec = load_job(s.jobs_dir, "tier")
    states = [score_partition(s, "tier", d) for d in SCORED]
    evs = [evaluate_day(s, spec, d, today=TODAY) for d in SCORED]

    total = np.zeros((4, 4), dtype=np.int64)
    for d, ev in zip(SCORED, evs, strict=True):
        rows = _joined(s, "tier", d)
        probs = np.array([[r["scores"][c] for c in CLASSES] for r in rows])
        y = np.array([CLASSES.index(r["klass"]) for r in rows])
        chosen = probs.argmax(axis=1)
        assert [r["label"] for r in rows] == [CLASSES[c] for c in chosen]  # the label: the most probable class
        conf = np.zeros((4, 4), dtype=np.int64)
        np.add.at(conf, (y, chosen), 1)
        total += conf
        f1 = 2 * np.diag(conf) / (conf.sum(axis=1) + conf.sum(axis=0))
        row = _evaluation(s, "tier", d)
        m = row["metrics"]
        assert row["kind"] == "multiclass" and row["auc"] is None and m["classes"] == CLASSES
        assert m["confusion"] == conf.tolist()
        assert m["logloss"] == pytest.approx(float(-np.mean(np.log(probs[np.arange(len(y)), y]))), abs=1e-5)
        assert m["accuracy"] == pytest.approx(float(np.mean(chosen == y)), abs=1e-6) and m["accuracy"] > 0.6
        assert m["macro_f1"] == pytest.approx(float(f1.mean()), abs=1e-5)
        assert m["recall"] == pytest.approx({c: conf[i, i] / conf[i].sum() for i, c in enumerate(CLASSES)}, abs=1e-5)
        holdout = _model_metrics(s, "tier_xgb", 1)
        assert row["levels"]["logloss_rise"]["value"] == pytest.approx(m["logloss"] - holdout["logloss"], abs=1e-5)
        assert row["levels"]["accuracy_drop"]["value"] == pytest.approx(holdout["accuracy"] - m["accuracy"], abs=1e-5)
        assert set(row["levels"]) == {"logloss_rise", "accuracy_drop"} and ev.level == row["level"]
        assert f"accuracy {m['accuracy']:.4f} (holdout {holdout['accuracy']:.4f})" in ev.line()

    # drift of the chosen classes against the model's reference shares
    reference = json.loads(open_store(s).get_bytes(f"{model_prefix('tier_xgb', 1)}/manifest.json"))["reference"]["classes"]
    labels = [r["label"] for r in _joined(s, "tier", SCORED[1])]
    day_shares = np.array([labels.count(c) for c in CLASSES]) / len(labels)
    expected = np.array(reference["shares"])
    with db.engine(s).connect() as conn:
        drift = {
            r.metric: r
            for r in conn.execute(
                sa.text("SELECT metric, value, level FROM drift_metrics WHERE run_id = CAST(:r AS uuid) AND feature = 'predicted_class'"),
                {"r": states[1].run_id},
            )
        }
    assert set(drift) == {"psi", "js"}
    assert drift["js"].value == pytest.approx(_js(day_shares, expected), abs=1e-5)
    assert drift["psi"].value == pytest.approx(float(np.sum((day_shares - expected) * np.log(day_shares / expected))), abs=1e-5)

    # the run report: the chosen class's probability and the class shares
    html = _run_report(s, states[1])
    assert "the chosen class's probability" in html and 'id="class-shares"' in html and "predicted_class" in html
    # the job report: the confusion matrix summed over the days, accuracy and log loss per day
    done = write_report(s, spec, 3, last=SCORED[1], path=tmp_path / "tier.html")
    html = unescape(done.path.read_text())
    assert 'id="confusion-matrix"' in html and "Summed over the 2 evaluated days" in html
    body = re.sub(r"\s+", " ", html[html.index('id="confusion-matrix"') :])
    for i, c in enumerate(CLASSES):
        cells = "".join(rf"<td style=\"[^\"]*\">{n:,}</td> ?" for n in total[i])
        assert re.search(rf"<th>{c}</th> ?{cells}", body), (c, total[i])
    assert "model's accuracy" in html and "Undefined" not in html
    # Prometheus: the kind's metrics, each class's recall, the drift of the chosen classes
    metrics.export(s, "tier")
    got = _samples(metrics.textfile_path(s, "tier").read_text())
    job = (("scoring_job", "tier"),)
    last = _evaluation(s, "tier", SCORED[1])["metrics"]
    assert got[("nightscore_evaluation_accuracy_ratio", job)] == pytest.approx(last["accuracy"])
    assert got[("nightscore_evaluation_class_recall_ratio", (("class", "gold"), *job))] == pytest.approx(
        last["recall"]["gold"]
    )
    assert got[("nightscore_drift_js_distance", (("feature", "predicted_class"), *job))] == pytest.approx(drift["js"].value)
    # the command line: the line by kind and the confusion matrix
    env = _env(s, COLUMNS="200")
    res = CliRunner().invoke(app, ["evaluate", "--job", "tier", "--ds", SCORED[1].isoformat(), "--early"], env=env)
    assert res.exit_code == 0, res.output
    assert f"accuracy {last['accuracy']:.4f}" in res.output and "recall" in res.output
    conf = _evaluation(s, "tier", SCORED[1])["metrics"]["confusion"]
    assert re.search(r"platinum\s+" + r"\s+".join(f"{n:,}" for n in conf[3]), res.output), res.output
    res = CliRunner().invoke(
        app, ["report", "--job", "tier", "--days", "3", "--end", SCORED[1].isoformat(), "--out", str(tmp_path / "r.html")], env=env
    )
    assert res.exit_code == 0 and "2 evaluated day(s); latest evaluated day" in res.output, res.output


# ---- refusals and alerts ----------------------------------------------------------------------------


def test_outcomes_that_do_not_fit_the_kind_are_refused_with_the_value_and_the_fix(kinds_settings, tmp_path):
    import shutil

    s, day = kinds_settings, SCORED[0]
    for job in ("tier", "demand"):
        score_partition(s, job, day)
    jobs = tmp_path / "jobs"
    shutil.copytree(s.jobs_dir, jobs)
    (jobs / "tier_outcomes.sql").write_text(
        "SELECT item_id, CASE WHEN item_id = 5 THEN 'diamond' ELSE klass END AS klass FROM kinds.items WHERE ds = :ds"
    )
    with pytest.raises(NightscoreError, match=re.escape("['diamond']")) as exc:
        evaluate_day(s, load_job(jobs, "tier"), day, today=TODAY)
    assert "decision.classes" in str(exc.value) and str(jobs / "tier_outcomes.sql") in str(exc.value)
    (jobs / "demand_outcomes.sql").write_text(
        "SELECT item_id, CASE WHEN item_id = 5 THEN 'NaN'::float8 ELSE target END AS target FROM kinds.items WHERE ds = :ds"
    )
    with pytest.raises(NightscoreError, match="not finite") as exc:
        evaluate_day(s, load_job(jobs, "demand"), day, today=TODAY)
    assert "finite number" in str(exc.value)
    # class numbers are read as classes; unknown outcomes (NULL) are left out
    (jobs / "tier_outcomes.sql").write_text(
        "SELECT item_id, CASE WHEN item_id <= 500 THEN array_position(ARRAY['bronze','silver','gold','platinum'], klass) - 1 END AS klass"
        " FROM kinds.items WHERE ds = :ds"
    )
    ev = evaluate_day(s, load_job(jobs, "tier"), day, today=TODAY)
    rows = _joined(s, "tier", day)[:500]
    assert ev.rows_labelled == 500 and ev.rows_published == ROWS
    assert ev.metrics["accuracy"] == pytest.approx(float(np.mean([r["label"] == r["klass"] for r in rows])), abs=1e-6)
    # a spec whose kind changed since the day was scored
    (jobs / "tier.yml").write_text(
        MULTICLASS.replace("kind: multiclass", "kind: regression").replace(f"decision:\n  classes: {CLASSES}\n", "")
    )
    with pytest.raises(NightscoreError, match="a multiclass model; the spec's model.kind is now regression"):
        evaluate_day(s, load_job(jobs, "tier"), day, today=TODAY)


def test_outcomes_turned_round_alert_for_every_kind(kinds_settings, webhook):
    s = kinds_settings
    for job in ("demand", "tier"):
        score_partition(s, job, TURNED)
    with db.engine(s).begin() as conn:  # what drove the outcomes changed after the day was scored
        conn.execute(sa.text("UPDATE kinds.items SET target = 28 - target WHERE ds = :d"), {"d": TURNED})
        conn.execute(
            sa.text(
                "UPDATE kinds.items SET klass = (ARRAY['platinum','gold','silver','bronze'])[array_position(ARRAY['bronze','silver','gold','platinum'], klass)] WHERE ds = :d"
            ),
            {"d": TURNED},
        )
    demand = evaluate_day(s, load_job(s.jobs_dir, "demand"), TURNED, today=TODAY)
    tier = evaluate_day(s, load_job(s.jobs_dir, "tier"), TURNED, today=TODAY)
    assert demand.level == "alert" and "rmse_rise" in demand.alerts and demand.levels["rmse_rise"]["value"] > 1
    assert tier.level == "alert" and {"accuracy_drop", "logloss_rise"} <= set(tier.alerts)
    extra = alert_extra([tier])
    assert extra is not None and extra["trigger"] == "performance" and extra["alerts"] == tier.alerts
    texts = {m["json"]["nightscore"]["job"]: m["json"]["text"] for m in webhook.received}
    assert "rmse_rise" in texts["demand"] and "accuracy_drop" in texts["tier"]


# ---- a model registered from a file -----------------------------------------------------------------


def test_a_model_registered_from_a_file_gets_its_run_report_and_its_reference_metrics_compared(kinds_settings, caplog):
    """Its registry row has the metrics of a reference window (no holdout keys, no train/holdout rows) and its
    manifest no drift reference: runs used to warn that their HTML report was not written (UndefinedError)."""
    from pipeline import registry

    s, day = kinds_settings, SCORED[1]
    eng, store = db.engine(s), open_store(s)
    prefix = model_prefix("demand_xgb", 1)
    manifest = json.loads(store.get_bytes(f"{prefix}/manifest.json"))
    reference_metrics = {k: v for k, v in manifest["metrics"].items() if k not in ("train_rows", "holdout_rows")}
    handed = {
        **{k: manifest[k] for k in ("job", "kind", "model", "features", "feature_types", "xgboost_version", "format")},
        "metrics": reference_metrics,
        "training_window": {"reference_start": str(TRAIN_END - timedelta(days=1)), "reference_end": str(TRAIN_END)},
        "origin": {"how": "registered", "file": "/models/demand.ubj"},
    }  # and no drift reference: the day's drift is not measured, its run has no drift level
    mv = registry.register(eng, store, "demand_xgb", store.get_bytes(f"{prefix}/model.ubj"), handed)
    with caplog.at_level("WARNING"):
        state = score_partition(s, "demand", day, model_version=mv.version)
    assert not [r for r in caplog.records if "report was not written" in r.getMessage()]
    assert state.report_uri is not None
    html = _run_report(s, state)
    assert "registered from a file (/models/demand.ubj)" in html
    assert f"reference window {TRAIN_END - timedelta(days=1)} to {TRAIN_END}" in html
    assert html.count("Not measured") == 2 and ">not measured<" in html  # no score or feature reference, no drift level
    ev = evaluate_day(s, load_job(s.jobs_dir, "demand"), day, today=TODAY)
    assert ev.model_version == mv.version and ev.holdout == reference_metrics
    assert ev.levels["rmse_rise"]["value"] == pytest.approx(ev.metrics["rmse"] / reference_metrics["rmse"] - 1, abs=1e-5)
