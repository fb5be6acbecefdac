"""Shadow (challenger) scoring on a real PostgreSQL: a second version of the demo churn model scores the same
rows of the same day into shadow_predictions, published with the day and never into predictions.

The promises: predictions is the same, column by column, with and without a shadow model; the shadow rows
are what the version would publish as the champion; a shadow model that fails (a corrupt model file, an alias
that does not exist, a shard that never recorded it) leaves the champion's day published and says why in
shadow_runs, its rows left out; a rerun replaces the day's shadow rows; two shards give the rows one does;
the reader role sees none of it; ``compare`` and ``model promote --evidence compare`` read it back.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from pipeline import db, runs
from pipeline.cli import app
from pipeline.jobs import load_job
from pipeline.run import begin, finish_step, publish_step, run_shards, score_partition
from pipeline.shadow import ledger
from pipeline.train import train_model
from tests.conftest import CUSTOMERS, DAY
from tests.integration.test_cli import _env
from tests.integration.test_roles import _denied, logins  # noqa: F401  (a fixture)

pytestmark = pytest.mark.integration
runner = CliRunner()
ROW = "entity_id, score, label, scores::text, model_name, model_version"


@pytest.fixture()
def challenger(local_settings) -> int:
    """A second version of churn_xgb (trained a day earlier), not promoted: the shadow model."""
    res = train_model(local_settings, load_job(local_settings.jobs_dir, "churn"), end=DAY - timedelta(days=2), promote="never")
    assert res.version == 2 and not res.promoted
    return res.version


def _rows(settings, table: str, ds=DAY, version: int | None = None) -> list[tuple]:
    where = " AND model_version = :v" if version is not None else ""
    with db.engine(settings).connect() as conn:
        return conn.execute(
            sa.text(f"SELECT {ROW} FROM {table} WHERE job = 'churn' AND ds = :d{where} ORDER BY entity_id"), {"d": ds, "v": version}
        ).all()


def _count(settings, sql: str, **params) -> int:
    with db.engine(settings).connect() as conn:
        return conn.execute(sa.text(sql), params).scalar()


def test_shadow_scores_the_same_rows_and_predictions_stay_the_same(local_settings, challenger):
    s = local_settings
    alone = score_partition(s, "churn", DAY)
    baseline = _rows(s, "predictions")
    assert len(baseline) == CUSTOMERS and alone.shadows == []

    shadowed = score_partition(s, "churn", DAY, shadow=[challenger])
    assert shadowed.shadows and shadowed.shadows[0]["version"] == challenger
    assert _rows(s, "predictions") == baseline  # every column but the run's id and time, row for row
    shadow = _rows(s, "shadow_predictions", version=challenger)
    assert len(shadow) == CUSTOMERS and [r.entity_id for r in shadow] == [r.entity_id for r in baseline]
    assert {(r.model_name, r.model_version) for r in shadow} == {("churn_xgb", challenger)}
    assert _count(s, "SELECT count(DISTINCT run_id::text) FROM shadow_predictions WHERE ds = :d", d=DAY) == 1
    assert _count(s, "SELECT min(run_id::text) FROM shadow_predictions WHERE ds = :d", d=DAY) == shadowed.run_id
    assert sum(a.score != b.score for a, b in zip(baseline, shadow, strict=True)) > CUSTOMERS / 2  # another model

    (row,) = ledger(db.engine(s), shadowed.run_id)
    sha = _count(s, "SELECT sha256 FROM model_versions WHERE model_name = 'churn_xgb' AND version = :v", v=challenger)
    assert (row["status"], row["model_version"], row["sha256"], row["rows"], row["error"]) == ("scored", challenger, sha, CUSTOMERS, None)
    assert row["shards"]["0"]["status"] == "scored" and row["seconds"] > 0
    (part,) = runs.shards(db.engine(s), shadowed.run_id)
    assert part["seconds"]["shadow"] > 0  # the shard's ledger has the time the shadow model took
    report = Path(s.artifact_uri, shadowed.prefix, "report.html").read_text()
    assert 'id="shadow-models"' in report and f"churn_xgb v{challenger}" in report
    manifest = json.loads(Path(s.artifact_uri, shadowed.prefix, "manifest.json").read_text())
    assert [(m["version"], m["sha256"]) for m in manifest["shadow_models"]] == [(challenger, sha)]
    assert Path(row["shards"]["0"]["uri"]).is_file()  # the shadow's scores are kept with the run's artifacts

    # a rerun replaces the day's shadow rows with its own, no duplicates
    again = score_partition(s, "churn", DAY, shadow=[challenger])
    assert _rows(s, "shadow_predictions", version=challenger) == shadow
    assert _count(s, "SELECT min(run_id::text) FROM shadow_predictions WHERE ds = :d", d=DAY) == again.run_id
    assert _count(s, "SELECT count(*) FROM shadow_predictions") == CUSTOMERS

    # the shadow rows are exactly what the version publishes as the champion; that run has no shadow rows
    pinned = score_partition(s, "churn", DAY, model_version=challenger)
    assert pinned.model_version == challenger and _rows(s, "predictions") == shadow
    assert _count(s, "SELECT count(*) FROM shadow_predictions") == 0
    with db.engine(s).connect() as conn:  # nothing left behind in the staging schema
        assert conn.execute(sa.text("SELECT count(*) FROM pg_tables WHERE schemaname = 'nightscore_staging'")).scalar() == 0


def test_the_spec_names_the_shadow_models(local_settings, challenger, tmp_path):
    import shutil

    import yaml

    from pipeline.config import PROJECT_ROOT

    jobs = tmp_path / "jobs"
    shutil.copytree(PROJECT_ROOT / "dags" / "jobs", jobs)
    raw = yaml.safe_load((jobs / "churn.yml").read_text())
    raw["model"]["shadow"] = [challenger, "champion_x", 1]
    (jobs / "churn.yml").write_text(yaml.safe_dump(raw))
    s = local_settings.with_overrides(jobs_dir=jobs)
    state = score_partition(s, "churn", DAY)
    found = {r["requested"]: r for r in ledger(db.engine(s), state.run_id)}
    assert found[str(challenger)]["status"] == "scored" and found[str(challenger)]["rows"] == CUSTOMERS
    assert found["champion_x"]["status"] == "failed" and "churn_xgb@champion_x" in found["champion_x"]["error"]
    assert found["1"]["status"] == "skipped" and "the model the run scores with" in found["1"]["note"]
    assert state.counts["published"] == CUSTOMERS
    # --shadow replaces the spec's list; a dry run scores none
    other = score_partition(s, "churn", DAY, shadow=["champion"])
    assert [r["status"] for r in ledger(db.engine(s), other.run_id)] == ["skipped"]
    assert _count(s, "SELECT count(*) FROM shadow_predictions") == 0


def test_a_failing_shadow_model_leaves_the_champions_day_published(local_settings, challenger):
    s = local_settings
    score_partition(s, "churn", DAY)
    baseline = _rows(s, "predictions")
    model = Path(_count(s, "SELECT artifact_uri FROM model_versions WHERE model_name = 'churn_xgb' AND version = :v", v=challenger))
    model.write_bytes(model.read_bytes()[:-100] + b"corrupted" * 10)  # the stored file no longer matches its checksum
    state = score_partition(s, "churn", DAY, shadow=[challenger, "nosuch"])
    assert runs.get(db.engine(s), state.run_id)["status"] == "succeeded" and state.counts["published"] == CUSTOMERS
    assert _rows(s, "predictions") == baseline
    assert _count(s, "SELECT count(*) FROM shadow_predictions") == 0
    found = {r["requested"]: r for r in ledger(db.engine(s), state.run_id)}
    bad = found[str(challenger)]
    assert bad["status"] == "failed" and "checksum mismatch" in bad["error"] and bad["rows"] is None
    assert bad["shards"]["0"]["status"] == "failed" and "checksum mismatch" in bad["shards"]["0"]["error"]
    assert found["nosuch"]["status"] == "failed" and found["nosuch"]["model_version"] is None
    res = runner.invoke(app, ["score", "--job", "churn", "--ds", DAY.isoformat(), "--shadow", str(challenger)], env=_env(s))
    assert res.exit_code == 0, res.output
    assert "checksum mismatch" in res.output and f"published {CUSTOMERS:,}" in res.output


def test_a_shadow_model_missing_from_a_shard_is_left_out_of_the_day(local_settings, challenger):
    """Two shards, each loads its shadow rows; one shard's record of it is then lost (as if its worker died
    after the COPY): publish removes the model's rows of every shard and publishes the day without it."""
    s = local_settings
    state = begin(s, "churn", DAY, shard_count=2, shadow=[challenger])
    state = run_shards(s, state, workers=2)
    eng = db.engine(s)
    staged = f'nightscore_staging."{state.loading_table}_shadow"'
    assert _count(s, f"SELECT count(*) FROM {staged}") == CUSTOMERS  # both shards' rows are in
    with eng.begin() as conn:
        conn.execute(sa.text("UPDATE shadow_runs SET shards = shards - '1' WHERE run_id = CAST(:r AS uuid)"), {"r": state.run_id})
    for step in (publish_step, finish_step):
        state = step(s, state)
    assert runs.get(eng, state.run_id)["status"] == "succeeded" and _count(s, "SELECT count(*) FROM predictions") == CUSTOMERS
    assert _count(s, "SELECT count(*) FROM shadow_predictions") == 0
    (row,) = ledger(eng, state.run_id)
    assert row["status"] == "failed" and "shard 1 of 2 did not score it" in row["error"]


def test_two_shards_give_the_shadow_rows_one_shard_does(local_settings, challenger):
    s = local_settings
    score_partition(s, "churn", DAY, shard_count=1, shadow=[challenger])
    one = _rows(s, "shadow_predictions", version=challenger)
    two = score_partition(s, "churn", DAY, shard_count=2, workers=2, shadow=[challenger])
    assert _rows(s, "shadow_predictions", version=challenger) == one and len(one) == CUSTOMERS
    parts = runs.shards(db.engine(s), two.run_id)
    assert all(p["seconds"]["shadow"] > 0 for p in parts)
    (row,) = ledger(db.engine(s), two.run_id)
    assert sorted(row["shards"]) == ["0", "1"] and sum(p["rows"] for p in row["shards"].values()) == CUSTOMERS


def test_compare_and_promote_with_evidence(local_settings, challenger):
    from pipeline.evaluate import evaluate_day

    s = local_settings
    for day in (DAY - timedelta(days=1), DAY):
        score_partition(s, "churn", day, shadow=[challenger])
    env = _env(s)
    res = runner.invoke(app, ["compare", "--job", "churn", "--days", "2", "--resamples", "200"], env=env)
    assert res.exit_code == 0, res.output
    assert f"churn_xgb v{challenger} (shadow) against the champion (v1)" in res.output and "2 day(s)" in res.output
    assert "auc on the same labelled rows" in res.output and "95% CI" in res.output
    res = runner.invoke(app, ["compare", "--job", "churn", "--days", "2", "--resamples", "200", "--json"], env=env)
    assert res.exit_code == 0, res.output
    result = json.loads(res.output)
    (c,) = result["comparisons"]
    assert c["shadow_version"] == challenger and c["champion_versions"] == [1] and len(c["days"]) == 2
    o = c["overall"]
    assert o["rows"] == 2 * CUSTOMERS and 0.5 < o["agreement"] < 1 and 0.5 < o["pearson"] < 1 and o["psi"] >= 0
    assert o["flipped"]["count"] == round((1 - o["agreement"]) * o["rows"]) and len(o["flipped"]["sample"]) == min(
        20, o["flipped"]["count"]
    )
    assert o["realized"]["rows"] == 2 * CUSTOMERS and o["labelled_days"] == 2  # each day's own outcomes, pooled
    day = c["days"][1]
    assert day["ds"] == DAY.isoformat() and day["labels"] == "matured"
    auc = day["realized"]["metrics"]["auc"]
    assert auc["ci"][0] <= auc["diff"] <= auc["ci"][1] and auc["resamples"] == 200
    # the champion's realized AUC is the day's evaluation (same rows, same outcomes)
    assert auc["champion"] == pytest.approx(evaluate_day(s, load_job(s.jobs_dir, "churn"), DAY).metrics["auc"], abs=1e-4)

    # a promotion cites the comparison, and the alias history keeps it
    res = runner.invoke(app, ["model", "promote", "churn_xgb", "1", "--evidence", "compare", "--days", "2"], env=env)
    assert res.exit_code == 1 and "no published shadow scores of churn_xgb v1" in res.output and "Fix:" in res.output
    res = runner.invoke(app, ["model", "promote", "churn_xgb", str(challenger), "--evidence", "compare", "--days", "2"], env=env)
    assert res.exit_code == 0, res.output
    assert f"v1 → v{challenger}" in res.output and "evidence: compare" in res.output
    with db.engine(s).connect() as conn:
        evidence = conn.execute(sa.text("SELECT evidence FROM model_alias_history ORDER BY id DESC LIMIT 1")).scalar()
    assert evidence["kind"] == "compare" and evidence["shadow_version"] == challenger and evidence["rows"] == 2 * CUSTOMERS
    assert evidence["realized"]["metrics"]["auc"]["champion"] == o["realized"]["metrics"]["auc"]["champion"]
    res = runner.invoke(app, ["model", "history", "churn_xgb"], env=env)
    assert res.exit_code == 0 and "compare" in res.output and "agreement" in res.output, res.output


def test_the_writer_shadows_and_the_reader_sees_none_of_it(local_settings, challenger, logins):  # noqa: F811
    w = local_settings.with_overrides(database_url=logins["writer"])
    res = runner.invoke(app, ["score", "--job", "churn", "--ds", DAY.isoformat(), "--shadow", str(challenger)], env=_env(w))
    assert res.exit_code == 0 and f"shadow churn_xgb v{challenger}: {CUSTOMERS:,} rows" in res.output, res.output
    res = runner.invoke(app, ["compare", "--job", "churn", "--resamples", "0", "--json"], env=_env(w))
    assert res.exit_code == 0 and json.loads(res.output)["comparisons"][0]["overall"]["rows"] == CUSTOMERS, res.output
    day = DAY.isoformat()
    res = runner.invoke(app, ["backfill", "--job", "churn", "--start", day, "--end", day, "--shadow", "v2"], env=_env(w))
    assert res.exit_code == 0, res.output
    assert _count(local_settings, "SELECT count(*) FROM shadow_predictions WHERE model_version = 2") == CUSTOMERS
    r = logins["reader"]
    for statement in (
        "SELECT * FROM shadow_predictions",
        "SELECT * FROM nightscore_shadow.churn__20260315",
        "SELECT * FROM shadow_runs",
        "SELECT nightscore_clear_shadow_version('load_000000000000_000000000000', 2)",
    ):
        assert "permission denied" in _denied(r, statement), statement


def test_a_multiclass_shadow_on_a_parquet_source_in_two_shards(local_settings):
    """plan_choice: every class's probability in ``scores``, its rows from Parquet (a sharded run's shards are
    row groups, cleared by key); the realized accuracy and log loss from the published class probabilities."""
    from pipeline.compare import compare
    from pipeline.evaluate import evaluate_day

    s = local_settings
    spec = load_job(s.jobs_dir, "plan_choice")
    v2 = train_model(s, spec, end=DAY - timedelta(days=2), promote="never").version
    state = score_partition(s, "plan_choice", DAY, shard_count=2, workers=2, shadow=[v2])
    (row,) = ledger(db.engine(s), state.run_id)
    assert row["status"] == "scored" and row["rows"] == state.counts["published"] == CUSTOMERS
    with db.engine(s).connect() as conn:
        shadow = conn.execute(
            sa.text("SELECT count(*), count(scores), count(DISTINCT label) FROM shadow_predictions WHERE job = 'plan_choice'")
        ).one()
    assert tuple(shadow)[:2] == (CUSTOMERS, CUSTOMERS) and shadow[2] > 1
    result = compare(s, spec, days=1, resamples=100)
    (c,) = result["comparisons"]
    m = c["days"][0]["realized"]["metrics"]
    assert set(m) == {"logloss", "accuracy"} and m["accuracy"]["ci"][0] <= m["accuracy"]["diff"] <= m["accuracy"]["ci"][1]
    ev = evaluate_day(s, spec, DAY).metrics
    assert m["accuracy"]["champion"] == pytest.approx(ev["accuracy"], abs=1e-6)
    assert m["logloss"]["champion"] == pytest.approx(ev["logloss"], abs=1e-6)


def test_a_shadow_model_scores_the_champions_rows_less_the_quarantined_ones(local_settings, challenger, tmp_path):
    from tests.integration.test_quality import _job, _replace

    s = _job(local_settings, tmp_path, _replace("discount_pct", "CASE WHEN customer_id IN (7, 500) THEN 250.0 ELSE discount_pct END"))
    for shards in (1, 2):
        state = score_partition(s, "churn", DAY, shard_count=shards, shadow=[challenger])
        assert state.counts["quarantined"] == 2 and state.counts["published"] == CUSTOMERS - 2
        shadow = _rows(s, "shadow_predictions", version=challenger)
        assert [r.entity_id for r in shadow] == [r.entity_id for r in _rows(s, "predictions")]
        assert not {"7", "500"} & {r.entity_id for r in shadow}


def test_a_publish_retried_after_its_loading_tables_were_dropped_loads_the_shadow_rows_again(local_settings, challenger):
    from pipeline.publish import drop_loading_table

    s = local_settings
    state = begin(s, "churn", DAY, shard_count=2, shadow=[challenger])
    state = run_shards(s, state, workers=2)
    drop_loading_table(db.engine(s), state.loading_table)  # what a failed publish leaves for its retry
    for step in (publish_step, finish_step):
        state = step(s, state)
    assert _count(s, "SELECT count(*) FROM predictions") == CUSTOMERS
    assert len(_rows(s, "shadow_predictions", version=challenger)) == CUSTOMERS
    (row,) = ledger(db.engine(s), state.run_id)
    assert row["status"] == "scored" and row["rows"] == CUSTOMERS
