"""The DAGs end to end with ``dag.test()``: real Airflow task runs against a real PostgreSQL and store.

Settings reach the tasks the way they do in production: through the ``nightscore_postgres`` and
``nightscore_s3`` connections (as AIRFLOW_CONN_* variables).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from pipeline import db, registry
from tests.conftest import DAY, flip_outcomes, shift_day

pytestmark = [pytest.mark.integration, pytest.mark.airflow]


def dag(dag_id: str):
    """A freshly parsed DAG: an in-process ``dag.test()`` folds its run conf into the DAG object's params,
    so each run gets its own parse, as each task does in a real deployment."""
    from airflow.dag_processing.dagbag import DagBag

    from pipeline.config import PROJECT_ROOT

    bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags"))
    assert bag.import_errors == {}
    return bag.dags[dag_id]


def _rows(settings, ds=DAY):
    with db.engine(settings).connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT entity_id, score, label, model_version, run_id FROM predictions WHERE job = 'churn' AND ds = :ds ORDER BY entity_id"
            ),
            {"ds": ds},
        ).all()


def _runs(settings, airflow_run_id):
    with db.engine(settings).connect() as conn:
        return (
            conn.execute(sa.text("SELECT * FROM scoring_runs WHERE airflow_run_id = :r ORDER BY started_at"), {"r": airflow_run_id})
            .mappings()
            .all()
        )


def _states(dr):
    return {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}


def _at(day):
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _event_extras(dr, uri: str) -> list[dict]:
    """The ``extra`` of each event of the Asset ``uri`` that the run ``dr`` emitted."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        events = session.scalars(
            sa.select(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id).where(
                AssetEvent.source_run_id == dr.run_id, AssetModel.uri == uri
            )
        ).all()  # fmt: skip
        return [dict(e.extra) for e in events]


def test_scoring_dag_publishes_and_reruns_identically(airflow_settings):
    dr = dag("score_churn").test(logical_date=_at(DAY))
    assert str(dr.state) == "success", _states(dr)
    first = _rows(airflow_settings)
    assert len(first) == 3_000
    [run] = _runs(airflow_settings, dr.run_id)
    assert run["status"] == "succeeded" and run["ds"] == DAY
    assert run["rows_extracted"] == run["rows_published"] == 3_000
    assert {r.run_id for r in first} == {run["run_id"]}
    # the ledger names the Airflow task instance and try that worked on it last, and no process holds it now
    assert run["owner_task"] == f"score_churn.monitor {dr.run_id}" and run["owner_try"] >= 1, run
    assert run["owner_pid"] is None and run["published_at"] is not None and run["stage"] == "monitor"

    dr2 = dag("score_churn").test(logical_date=_at(DAY))
    assert str(dr2.state) == "success", _states(dr2)
    second = _rows(airflow_settings)
    assert [r[:4] for r in second] == [r[:4] for r in first]  # same entities, scores, labels, model
    assert {r.run_id for r in second} != {r.run_id for r in first}  # and the new run replaced the day
    with db.engine(airflow_settings).connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM predictions WHERE job='churn'")).scalar() == 3_000


def test_the_asset_event_says_which_day_run_and_model_it_published(airflow_settings):
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    dr = dag("score_churn").test(logical_date=_at(DAY))
    assert str(dr.state) == "success", _states(dr)
    assert _states(dr)["drift_alert"] == "skipped"  # no drift at its alert level: no drift event
    [run] = _runs(airflow_settings, dr.run_id)
    with create_session() as session:
        event = session.scalars(sa.select(AssetEvent).where(AssetEvent.source_run_id == dr.run_id)).one()
        extra = dict(event.extra)
    assert extra == {
        "job": "churn",
        "ds": DAY.isoformat(),
        "run_id": str(run["run_id"]),
        "model_name": "churn_xgb",
        "model_version": run["model_version"],
        "shards": 1,
        "rows_published": 3_000,
        "rows_quarantined": 0,
    }


def test_sharded_dag_run_maps_one_task_per_shard(airflow_settings):
    dr = dag("score_churn").test(logical_date=_at(DAY), run_conf={"shards": 3})
    assert str(dr.state) == "success", _states(dr)
    shard_tis = [ti for ti in dr.get_task_instances() if ti.task_id == "shard"]
    assert sorted(ti.map_index for ti in shard_tis) == [0, 1, 2] and {str(ti.state) for ti in shard_tis} == {"success"}
    [run] = _runs(airflow_settings, dr.run_id)
    assert run["status"] == "succeeded" and run["shards"] == 3 and run["rows_published"] == 3_000
    assert len({r.entity_id for r in _rows(airflow_settings)}) == 3_000


def test_dry_run_publishes_nothing_and_skips_the_asset(airflow_settings):
    dr = dag("score_churn").test(logical_date=_at(DAY), run_conf={"dry_run": True})
    assert str(dr.state) == "success", _states(dr)
    states = _states(dr)
    assert states["publish"] == "skipped" and states["monitor"] == "success"
    assert _rows(airflow_settings) == []
    [run] = _runs(airflow_settings, dr.run_id)
    assert run["dry_run"] and run["status"] == "succeeded" and run["rows_scored"] == 3_000 and run["rows_published"] == 0


def test_pinned_model_version(airflow_settings):
    from pipeline.jobs import load_job
    from pipeline.train import train_model

    spec = load_job(airflow_settings.jobs_dir, "churn")
    v2 = train_model(airflow_settings, spec, end=DAY - timedelta(days=2), promote="always")
    assert v2.promoted and v2.version == 2
    dr = dag("score_churn").test(logical_date=_at(DAY), run_conf={"model_version": 1})
    assert str(dr.state) == "success", _states(dr)
    assert {r.model_version for r in _rows(airflow_settings)} == {1}
    dr = dag("score_churn").test(logical_date=_at(DAY + timedelta(days=1)))
    assert str(dr.state) == "success", _states(dr)
    assert {r.model_version for r in _rows(airflow_settings, DAY + timedelta(days=1))} == {2}


def test_a_drifted_day_emits_the_drift_event_that_schedules_training(airflow_settings):
    day = DAY + timedelta(days=2)
    shift_day(airflow_settings, day)
    dr = dag("score_churn").test(logical_date=_at(day))
    assert str(dr.state) == "success", _states(dr)
    assert _states(dr)["drift_alert"] == "success"
    [run] = _runs(airflow_settings, dr.run_id)
    extras = _event_extras(dr, "nightscore://drift/churn")
    assert len(extras) == 1 and extras[0]["ds"] == day.isoformat() and extras[0]["run_id"] == str(run["run_id"])
    assert {"monthly_spend:psi", "plan:js"} <= set(extras[0]["alerts"]), extras
    assert not [a for a in extras[0]["alerts"] if a.split(":")[0] not in ("monthly_spend", "plan", "score")]
    train = dag("train_churn")
    assert "nightscore://drift/churn" in str(train.timetable)  # train_churn runs on its cron or on this event


def test_outcomes_turned_round_emit_the_performance_event_that_schedules_training(airflow_settings):
    from pipeline.run import score_partition

    good, bad = DAY - timedelta(days=1), DAY
    for d in (good, bad):
        score_partition(airflow_settings, "churn", d)
    flip_outcomes(airflow_settings, bad)
    # a day as it should be: evaluated, no event (these days are months old: outside the scheduled run's
    # 90-day lookback, so each is named with the ds parameter)
    dr = dag("evaluate_churn").test(logical_date=None, run_conf={"ds": good.isoformat()})
    assert str(dr.state) == "success" and _states(dr)["performance_alert"] == "skipped", _states(dr)
    dr = dag("evaluate_churn").test(logical_date=None, run_conf={"ds": bad.isoformat()})
    assert str(dr.state) == "success", _states(dr)
    assert _states(dr)["performance_alert"] == "success"
    out = dr.get_task_instance("evaluate").xcom_pull(task_ids="evaluate")
    assert [e["level"] for e in out["evaluations"]] == ["alert"], out
    with db.engine(airflow_settings).connect() as conn:
        recorded = dict(conn.execute(sa.text("SELECT ds, level FROM evaluations WHERE job = 'churn'")).all())
    assert recorded[bad] == "alert" and recorded[good] != "alert", recorded
    extras = _event_extras(dr, "nightscore://performance/churn")
    assert len(extras) == 1 and extras[0]["trigger"] == "performance" and extras[0]["ds"] == bad.isoformat(), extras
    assert "auc_drop" in extras[0]["alerts"]
    # the training DAG's log line for a run this event starts
    from nightscore_airflow.assets import training_reason

    reason = training_reason({"triggering_asset_events": {"performance": [type("Event", (), {"extra": extras[0]})()]}})
    assert reason.startswith(f"performance reached its alert level: churn {bad} (model v1): auc_drop"), reason


def test_manual_trigger_without_logical_date_scores_the_ds_param_or_the_latest_day(airflow_settings):
    dr = dag("score_churn").test(logical_date=None, run_conf={"ds": (DAY + timedelta(days=1)).isoformat()})
    assert str(dr.state) == "success", _states(dr)
    assert len(_rows(airflow_settings, DAY + timedelta(days=1))) == 3_000

    run_after = _at(DAY + timedelta(days=3)) + timedelta(hours=5)  # 05:00 on DAY+3: the latest complete day is DAY+2
    dr = dag("score_churn").test(logical_date=None, run_after=run_after)
    assert str(dr.state) == "success", _states(dr)
    assert [r["ds"] for r in _runs(airflow_settings, dr.run_id)] == [DAY + timedelta(days=2)]

    # the trigger form's default: a logical date of now, in a day that is not over: the latest complete day
    dr = dag("score_churn").test(logical_date=run_after, run_after=run_after)
    assert str(dr.state) == "success", _states(dr)
    assert [r["ds"] for r in _runs(airflow_settings, dr.run_id)] == [DAY + timedelta(days=2)]


def test_invalid_partition_fails_once_without_retries_and_keeps_the_published_day(airflow_settings, webhook):
    assert str(dag("score_churn").test(logical_date=_at(DAY)).state) == "success"
    before = _rows(airflow_settings)
    with db.engine(airflow_settings).begin() as conn:  # break the source: an unknown plan
        conn.execute(sa.text("UPDATE demo.customer_activity SET plan = 'platinum' WHERE ds = :ds AND customer_id % 100 = 0"), {"ds": DAY})
    dr = dag("score_churn").test(logical_date=_at(DAY))
    assert str(dr.state) == "failed"
    tis = {ti.task_id: ti for ti in dr.get_task_instances()}
    assert str(tis["shard"].state) == "failed" and tis["shard"].try_number == 1  # no retry for bad input
    assert str(tis["publish"].state) == "upstream_failed"
    assert _rows(airflow_settings) == before
    failed = [r for r in _runs(airflow_settings, dr.run_id) if r["status"] == "failed"]
    assert failed and "plan" in failed[0]["error"]
    # the job spec's alerts: one webhook message (Slack-compatible JSON) naming the job, the day and the error
    assert len(webhook.received) == 1, webhook.received
    [msg] = webhook.received
    assert msg["content_type"] == "application/json" and msg["path"] == "/hooks/nightscore"
    text, facts = msg["json"]["text"], msg["json"]["nightscore"]
    assert f"churn {DAY}" in text and "column 'plan': must be one of" in text and "nothing was published" in text, text
    assert facts["job"] == "churn" and facts["ds"] == str(DAY) and facts["kind"] == "failed" and facts["airflow_run_id"] == dr.run_id
    assert facts["run_id"] == str(failed[0]["run_id"]) and "plan" in facts["detail"]


def test_training_dag_keeps_the_champion_unless_beaten(airflow_settings):
    eng = db.engine(airflow_settings)
    assert registry.aliases(eng, "churn_xgb")[("churn_xgb", "champion")] == 1
    # the same window as the champion's: the same model, byte for byte; nothing new registered, the champion stays
    dr = dag("train_churn").test(logical_date=None, run_conf={"end": (DAY - timedelta(days=1)).isoformat()})
    assert str(dr.state) == "success", _states(dr)
    out = dr.get_task_instance("train").xcom_pull(task_ids="train")
    assert out["version"] == 1 and out["registered"] is False and out["promoted"] is False and "byte-identical" in out["reason"]
    # another window: a new version, no better, so the champion stays
    dr = dag("train_churn").test(logical_date=None, run_conf={"end": (DAY - timedelta(days=2)).isoformat()})
    assert str(dr.state) == "success", _states(dr)
    out = dr.get_task_instance("train").xcom_pull(task_ids="train")
    assert out["version"] == 2 and out["registered"] is True and out["promoted"] is False and "kept v1" in out["reason"], out
    assert registry.aliases(eng, "churn_xgb")[("churn_xgb", "champion")] == 1
    # asked to promote regardless, it moves the alias
    dr = dag("train_churn").test(logical_date=None, run_conf={"end": (DAY - timedelta(days=3)).isoformat(), "promote": "always"})
    assert str(dr.state) == "success"
    assert registry.aliases(eng, "churn_xgb")[("churn_xgb", "champion")] == 3


def test_shadow_parameter_scores_a_challenger_in_every_shard_task(airflow_settings):
    from pipeline.jobs import load_job
    from pipeline.shadow import ledger
    from pipeline.train import train_model

    v2 = train_model(airflow_settings, load_job(airflow_settings.jobs_dir, "churn"), end=DAY - timedelta(days=2), promote="never")
    dr = dag("score_churn").test(logical_date=_at(DAY), run_conf={"shards": 2, "shadow": str(v2.version)})
    assert str(dr.state) == "success", _states(dr)
    [run] = _runs(airflow_settings, dr.run_id)
    [shadow] = ledger(db.engine(airflow_settings), str(run["run_id"]))
    assert shadow["status"] == "scored" and shadow["rows"] == 3_000 and sorted(shadow["shards"]) == ["0", "1"]
    with db.engine(airflow_settings).connect() as conn:
        rows = conn.execute(sa.text("SELECT count(*) FROM shadow_predictions WHERE job = 'churn' AND ds = :d"), {"d": DAY}).scalar()
    assert rows == 3_000 and {r.model_version for r in _rows(airflow_settings)} == {1}
