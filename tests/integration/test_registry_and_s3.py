"""Model registry operations, run manifests, and S3 failures (through a real HTTP proxy in front of moto)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

import pipeline
from pipeline import db, registry
from pipeline.cli import app
from pipeline.errors import NightscoreError
from pipeline.jobs import load_job
from pipeline.run import score_partition
from pipeline.storage import open_store
from pipeline.train import train_model
from tests.conftest import CUSTOMERS, DAY
from tests.integration.test_cli import _env

pytestmark = pytest.mark.integration


def _published_version(engine) -> set[int]:
    with engine.connect() as conn:
        return set(
            conn.execute(sa.text("SELECT DISTINCT model_version FROM predictions WHERE job='churn' AND ds=:d"), {"d": DAY}).scalars()
        )


def test_promote_then_rollback_take_effect_and_are_recorded(settings, engine):
    spec = load_job(settings.jobs_dir, "churn")
    assert train_model(settings, spec, end=DAY - timedelta(days=2), promote="never").version == 2
    runner = CliRunner()
    res = runner.invoke(app, ["model", "promote", "churn_xgb", "2", "--reason", "better recall"], env=_env(settings))
    assert res.exit_code == 0, res.output
    assert "v1 → v2" in res.output
    assert score_partition(settings, "churn", DAY).model_version == 2
    assert _published_version(engine) == {2}

    res = runner.invoke(app, ["model", "rollback", "churn_xgb"], env=_env(settings))
    assert res.exit_code == 0 and "v2 → v1" in res.output
    assert score_partition(settings, "churn", DAY).model_version == 1
    assert _published_version(engine) == {1}

    with engine.connect() as conn:
        history = conn.execute(
            sa.text(
                "SELECT from_version, to_version, reason, changed_by, changed_at FROM model_alias_history "
                "WHERE model_name = 'churn_xgb' AND alias = 'champion' ORDER BY id"
            )
        ).all()
    assert [(h.from_version, h.to_version) for h in history] == [(None, 1), (1, 2), (2, 1)]
    assert history[1].reason == "better recall" and history[2].reason == "rollback from v2"
    assert all(h.changed_by and h.changed_at for h in history)


def test_rollback_without_history_is_a_clear_error(settings):
    res = CliRunner().invoke(app, ["model", "rollback", "churn_xgb"], env=_env(settings))
    assert res.exit_code == 1 and "has no earlier version to roll back to" in res.output


def test_manifest_is_written_last_and_shown_by_runs_show(settings, store):
    state = score_partition(settings, "churn", DAY, airflow_run_id="manual__2026-03-16")
    manifest = json.loads(store.get_bytes(store.key(state.manifest_uri)))
    assert manifest["status"] == "succeeded" and manifest["run_id"] == state.run_id
    assert manifest["airflow_run_id"] == "manual__2026-03-16"
    assert manifest["counts"] == {
        "extracted": CUSTOMERS,
        "valid": CUSTOMERS,
        "quarantined": 0,
        "scored": CUSTOMERS,
        "loaded": CUSTOMERS,
        "published": CUSTOMERS,
    }
    assert [(sh["shard"], sh["status"], sh["rows_loaded"]) for sh in manifest["shards"]] == [(0, "loaded", CUSTOMERS)]
    assert len(manifest["features"]["sha256"]) == 64
    assert manifest["model"]["name"] == "churn_xgb" and manifest["model"]["version"] == 1 and len(manifest["model"]["sha256"]) == 64
    assert manifest["versions"]["nightscore"] == pipeline.__version__ and manifest["versions"]["xgboost"]
    assert manifest["validation_uri"].endswith("validation.json") and set(manifest["seconds"]) >= {
        "extract",
        "validate",
        "score",
        "publish",
    }
    keys = store.list(state.prefix)
    assert {k[len(state.prefix) + 1 :] for k in keys} == {
        "features.parquet",
        "validation.json",
        "data_docs/index.html",
        "predictions.parquet",
        "reasons.parquet",  # churn explains its rows (explain: {top: 3})
        "report.html",
        "manifest.json",
    }
    assert manifest["data_docs_uri"] == store.uri(f"{state.prefix}/data_docs/index.html")
    assert manifest["report_uri"] == store.uri(f"{state.prefix}/report.html")  # written before the manifest, which names it
    res = CliRunner().invoke(app, ["runs", "--show", state.run_id], env=_env(settings))
    assert res.exit_code == 0 and '"manifest"' in res.output and state.run_id in res.output and "features.parquet" in res.output
    assert manifest["data_docs_uri"] in res.output and manifest["validation_uri"] in res.output and manifest["report_uri"] in res.output


def test_transient_s3_failures_are_retried(s3_settings, s3_endpoint):
    engine = db.engine(s3_settings)
    s3_endpoint.fail_puts, s3_endpoint.failed = 3, 0
    state = score_partition(s3_settings, "churn", DAY)
    assert s3_endpoint.failed == 3
    assert state.counts["published"] == CUSTOMERS
    with engine.connect() as conn:
        assert (
            conn.execute(sa.text("SELECT status FROM scoring_runs WHERE run_id = CAST(:r AS uuid)"), {"r": state.run_id}).scalar()
            == "succeeded"
        )


def test_permanent_s3_failure_fails_the_run_without_manifest(s3_settings, s3_endpoint):
    engine, store = db.engine(s3_settings), open_store(s3_settings)
    s3_endpoint.fail_puts = -1
    try:
        with pytest.raises(
            NightscoreError, match=r"S3 upload of s3://ns-\w+/artifacts/runs/churn/ds=2026-03-15/.+/features.parquet failed"
        ) as info:
            score_partition(s3_settings, "churn", DAY)
    finally:
        s3_endpoint.fail_puts = 0
    assert "AWS_ENDPOINT_URL" in str(info.value)
    with engine.connect() as conn:
        run = conn.execute(sa.text("SELECT run_id, status, error FROM scoring_runs")).one()
        assert conn.execute(sa.text("SELECT count(*) FROM predictions")).scalar() == 0
    assert run.status == "failed" and "S3 upload" in run.error
    assert not store.exists(f"runs/churn/ds={DAY}/{run.run_id}/manifest.json")


def test_registry_refuses_unknown_version(engine):
    with pytest.raises(NightscoreError, match=r"model 'churn_xgb' has no version 5 \(registered: \[1\]\)"):
        registry.get_version(engine, "churn_xgb", 5)


def test_settings_from_airflow_style_connections(s3_settings, s3_endpoint):
    """The S3 endpoint and keys can come from an AWS connection (as Airflow hands it over) instead of AWS_*."""
    from dataclasses import replace

    from pipeline.config import settings_from_connections

    base = replace(s3_settings, s3_endpoint_url=None, database_url=None)
    conn = {
        "conn_type": "aws",
        "login": "from-connection",
        "password": "conn-secret",
        "extra": json.dumps({"endpoint_url": s3_endpoint.url, "region_name": "eu-west-1"}),
    }
    s = settings_from_connections(base, s3_settings.database_url, conn)
    assert "conn-secret" not in repr(s)  # secrets stay out of logs
    store = open_store(s)
    creds = store.client._request_signer._credentials
    assert (creds.access_key, store.client.meta.region_name) == ("from-connection", "eu-west-1")
    state = score_partition(s, "churn", DAY)  # reaches moto only through the connection's endpoint_url
    assert state.counts["published"] == CUSTOMERS and store.exists(store.key(state.manifest_uri))


def test_rollbacks_walk_back_through_the_history(local_settings):
    """v1 → v2 → v3, then rollback, rollback: v2, then v1 (not a flip between v3 and v2); then no further."""
    eng = db.engine(local_settings)
    store = open_store(local_settings)
    v1 = registry.get_version(eng, "churn_xgb", 1)
    data = store.get_bytes(store.key(v1.artifact_uri))
    manifest = {
        "features": v1.features,
        "metrics": v1.metrics,
        "training_window": v1.training_window,
        "xgboost_version": v1.xgboost_version,
    }
    for version in (2, 3):
        assert registry.register(eng, store, "churn_xgb", data, manifest).version == version
        registry.set_alias(eng, "churn_xgb", "champion", version, reason=f"to v{version}")
    assert registry.rollback(eng, "churn_xgb") == (2, 3)
    assert registry.rollback(eng, "churn_xgb") == (1, 2)
    assert registry.aliases(eng, "churn_xgb")[("churn_xgb", "champion")] == 1
    with pytest.raises(NightscoreError, match="no earlier version"):
        registry.rollback(eng, "churn_xgb")
    registry.set_alias(eng, "churn_xgb", "champion", 3, reason="forward again")
    assert registry.rollback(eng, "churn_xgb") == (1, 3)  # back to where it was before that move


def test_training_an_identical_model_registers_nothing(local_settings):
    """The same window and settings give the same bytes: the registry keeps one version and says so."""
    spec = load_job(local_settings.jobs_dir, "churn")
    res = train_model(local_settings, spec, end=DAY - timedelta(days=1), promote="always")
    assert not res.registered and res.version == 1 and not res.promoted
    assert "byte-identical to the registered v1" in res.reason
    assert [mv.version for mv in registry.list_versions(db.engine(local_settings), "churn_xgb")] == [1]


def test_unknown_model_names_are_errors(local_settings):
    runner = CliRunner()
    for args in (["model", "list", "nope"], ["model", "rollback", "nope"], ["model", "promote", "nope", "1"]):
        res = runner.invoke(app, args, env=_env(local_settings))
        assert res.exit_code == 1 and "no model named 'nope' is registered (registered: basket_value_xgb, churn_xgb, plan_choice_xgb)" in res.output, res.output


def test_local_artifacts_are_readable_by_others(local_settings):
    import stat

    state = score_partition(local_settings, "churn", DAY)
    store = open_store(local_settings)
    for key in ("manifest.json", "predictions.parquet", "features.parquet", "validation.json"):
        mode = stat.S_IMODE((store.root / state.prefix / key).stat().st_mode)
        assert mode == 0o644, (key, oct(mode))
