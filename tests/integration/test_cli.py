"""The `nightscore` command: real runs and the one-paragraph errors with non-zero exits."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from pipeline import db
from pipeline.cli import app
from tests.conftest import CUSTOMERS, DAY

pytestmark = pytest.mark.integration
runner = CliRunner()


def _env(s, **extra):
    env = {
        "NIGHTSCORE_HOME": str(s.home),
        "NIGHTSCORE_DATABASE_URL": s.database_url,
        "NIGHTSCORE_ARTIFACT_URI": s.artifact_uri,
        "NIGHTSCORE_JOBS_DIR": str(s.jobs_dir),
        "NIGHTSCORE_THREADS": "2",
    }
    if s.s3_endpoint_url:
        env["AWS_ENDPOINT_URL"] = s.s3_endpoint_url
    env.update(extra)
    return env


def test_score_runs_and_model_list(settings):
    res = runner.invoke(app, ["score", "--job", "churn", "--ds", DAY.isoformat()], env=_env(settings))
    assert res.exit_code == 0, res.output
    assert f"extracted {CUSTOMERS:,}" in res.output and f"published {CUSTOMERS:,}" in res.output
    res = runner.invoke(app, ["runs", "--job", "churn"], env=_env(settings))
    assert res.exit_code == 0 and "succeeded" in res.output
    res = runner.invoke(app, ["model", "list"], env=_env(settings))
    assert res.exit_code == 0 and "champion" in res.output and "churn_xgb" in res.output


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (["score", "--job", "nope", "--ds", "2026-03-15"], "unknown job 'nope'", 1),
        (["score", "--job", "churn", "--ds", "2026-03-15", "--model-version", "7"], "model 'churn_xgb' has no version 7", 1),
        # a value the command cannot use is a usage error: exit 2, nothing run or recorded
        (["score", "--job", "churn", "--ds", "2026-02-30"], "'2026-02-30' is not a date", 2),
        (["score", "--job", "churn", "--ds", "2026-03-15", "--shards", "zero"], "--shards 'zero' is not a shard count", 2),
        (["train", "--job", "churn", "--promote", "sometimes"], "--promote 'sometimes' is not one of", 2),
        (["score", "--job", "churn", "--ds", "2999-01-01"], "--ds 2999-01-01 is not a complete day yet in UTC", 2),
    ],
)
def test_errors_are_one_paragraph_with_their_exit_code(local_settings, args, message, code):
    res = runner.invoke(app, args, env=_env(local_settings))
    assert res.exit_code == code, res.output
    assert message in " ".join(res.output.split()) and "Traceback" not in res.output and "Fix:" in res.output
    with db.engine(local_settings).connect() as conn:  # nothing recorded for a usage error
        assert code == 1 or conn.execute(sa.text("SELECT count(*) FROM scoring_runs")).scalar() == 0


def test_no_model_registered(empty_settings):
    res = runner.invoke(app, ["score", "--job", "churn", "--ds", "2026-03-15"], env=_env(empty_settings))
    assert res.exit_code == 1 and "no model is registered as churn_xgb@champion" in res.output


def test_database_unreachable(tmp_path):
    from pipeline.config import PROJECT_ROOT, Settings

    s = Settings(
        tmp_path, "postgresql://nightscore:secret-pw@127.0.0.1:1/nightscore", str(tmp_path / "a"), PROJECT_ROOT / "dags" / "jobs", 1, 1000
    )
    res = runner.invoke(app, ["score", "--job", "churn", "--ds", "2026-03-15"], env=_env(s))
    assert res.exit_code == 1
    assert "cannot connect to PostgreSQL" in res.output and "127.0.0.1:1" in res.output
    assert "secret-pw" not in res.output  # never print the password


def test_invalid_job_spec(settings, tmp_path):
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    (jobs / "broken.yml").write_text("name: broken\nentity_key: id\n")
    res = runner.invoke(app, ["score", "--job", "broken", "--ds", "2026-03-15"], env=_env(settings, NIGHTSCORE_JOBS_DIR=str(jobs)))
    assert res.exit_code == 1
    assert "invalid job spec" in res.output and "broken.yml" in res.output and "field 'source'" in res.output


def _paragraph(res) -> str:
    """The error as printed: one paragraph, what / where / fix, no traceback."""
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output and "Fix:" in res.output, res.output
    return " ".join(res.output.split())


def test_model_file_that_is_not_xgboost(local_settings):
    """A registered version whose bytes (checksum and all) are not an XGBoost model: a ModelError paragraph."""
    from pipeline import db, registry
    from pipeline.storage import open_store

    eng = db.engine(local_settings)
    v1 = registry.get_version(eng, "churn_xgb", 1)
    manifest = {"features": v1.features, "metrics": v1.metrics, "training_window": v1.training_window, "xgboost_version": "3"}
    bad = registry.register(eng, open_store(local_settings), "churn_xgb", b"PK\x03\x04 this is a zip, not a model", manifest)
    res = runner.invoke(
        app, ["score", "--job", "churn", "--ds", DAY.isoformat(), "--model-version", str(bad.version)], env=_env(local_settings)
    )
    text = _paragraph(res)
    assert "XGBoost could not use the model" in text and "during score" in text


def test_runs_show_takes_a_prefix_and_refuses_bad_ids(local_settings):
    from pipeline.run import score_partition

    run_id = score_partition(local_settings, "churn", DAY).run_id
    res = runner.invoke(app, ["runs", "--show", run_id[:8]], env=_env(local_settings))
    assert res.exit_code == 0 and run_id in res.output, res.output
    for bad, words in (("f52", "is not a run id"), ("not-an-id!", "is not a run id"), ("ffffffff", "no run id starts with")):
        assert words in _paragraph(runner.invoke(app, ["runs", "--show", bad], env=_env(local_settings)))


def test_train_with_the_database_down(tmp_path):
    from pipeline.config import PROJECT_ROOT, Settings

    s = Settings(
        tmp_path, "postgresql://nightscore:pw-9x7@127.0.0.1:1/nightscore", str(tmp_path / "a"), PROJECT_ROOT / "dags" / "jobs", 1, 1000
    )
    text = _paragraph(runner.invoke(app, ["train", "--job", "churn"], env=_env(s)))
    assert "cannot connect to PostgreSQL" in text and "pw-9x7" not in text


def test_quickstart_never_prints_the_password(empty_settings):
    from sqlalchemy.engine import make_url

    url = make_url(empty_settings.database_url).set(password="pw-Secret-42").render_as_string(hide_password=False)
    res = runner.invoke(app, ["quickstart", "--customers", "400"], env=_env(empty_settings.with_overrides(database_url=url)))
    assert res.exit_code == 0, res.output
    assert "pw-Secret-42" not in res.output and "psql 'postgresql://postgres@" in res.output


def test_demo_data_says_when_it_replaces_days(local_settings):
    args = ["demo-data", "--start", "2026-03-14", "--end", "2026-03-15"]
    res = runner.invoke(app, [*args, "--customers", str(CUSTOMERS)], env=_env(local_settings))
    assert res.exit_code == 0 and "0 written, 2 already there" in res.output and "replaced" not in res.output, res.output
    res = runner.invoke(app, [*args, "--customers", "500"], env=_env(local_settings))
    assert res.exit_code == 0 and "2 written" in res.output, res.output
    assert "2 day(s) had another number of customers (or were half-written) and were replaced with 500 customers each" in res.output


def test_listing_commands_speak_json_and_fit_80_columns(local_settings):
    import json

    from pipeline.run import score_partition

    run_id = score_partition(local_settings, "churn", DAY).run_id
    env = _env(local_settings, COLUMNS="80")
    res = runner.invoke(app, ["runs"], env=env)
    assert res.exit_code == 0 and run_id[:8] in res.output and "succeeded" in res.output
    assert max(len(line) for line in res.output.splitlines()) <= 80, res.output
    runs = json.loads(runner.invoke(app, ["runs", "--json"], env=env).output)
    assert runs[0]["run_id"] == run_id and runs[0]["status"] == "succeeded" and runs[0]["rows_published"] == CUSTOMERS
    models = json.loads(runner.invoke(app, ["model", "list", "--json"], env=env).output)
    # the template trains a champion for each demo job
    assert [(m["name"], m["version"], m["aliases"]) for m in models] == [
        ("basket_value_xgb", 1, ["champion"]),
        ("churn_xgb", 1, ["champion"]),
        ("plan_choice_xgb", 1, ["champion"]),
    ]
    res = runner.invoke(app, ["model", "list"], env=env)
    assert res.exit_code == 0 and max(len(line) for line in res.output.splitlines()) <= 80, res.output
    jobs = json.loads(runner.invoke(app, ["jobs", "--json"], env=env).output)
    assert [j["job"] for j in jobs["jobs"]] == ["basket_value", "churn", "plan_choice"] and jobs["errors"] == []  # the three demo jobs


def test_version_and_checking_job_specs(local_settings, tmp_path):
    import pipeline

    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.strip() == f"nightscore {pipeline.__version__}"
    good = local_settings.jobs_dir / "churn.yml"
    res = runner.invoke(app, ["jobs", "--check", str(good)], env=_env(local_settings))
    assert res.exit_code == 0 and "1 spec(s) valid" in res.output, res.output
    bad = tmp_path / "broken.yml"
    bad.write_text("name: broken\nentity_key: id\n")
    res = runner.invoke(app, ["jobs", "--check", str(good), "--check", str(bad)], env=_env(local_settings))
    assert res.exit_code == 1 and "invalid job spec" in res.output and "field 'source'" in res.output and "Traceback" not in res.output


def test_backfill_checks_up_front_and_ends_with_a_summary(local_settings):
    from datetime import date, timedelta

    from pipeline import db

    env = _env(local_settings)
    args = ["backfill", "--job", "churn", "--start", DAY.isoformat()]
    # problems found before any day runs: nothing is started
    text = " ".join(runner.invoke(app, [*args, "--end", DAY.isoformat(), "--model-version", "9"], env=env).output.split())
    assert "model 'churn_xgb' has no version 9" in text
    future = date.today() + timedelta(days=1)
    text = " ".join(runner.invoke(app, [*args, "--end", future.isoformat()], env=env).output.split())
    assert f"--end {future} is not a complete day yet" in text
    with db.engine(local_settings).connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM scoring_runs")).scalar() == 0
    # a day with data and one without: each day's result in the summary, exit 1 naming the failed day
    empty = DAY + timedelta(days=4)
    res = runner.invoke(
        app, ["backfill", "--job", "churn", "--start", (DAY + timedelta(days=3)).isoformat(), "--end", empty.isoformat()], env=env
    )
    assert res.exit_code == 1, res.output
    assert "backfill churn: 2 day(s)" in res.output and "with churn_xgb v1" in res.output
    assert f"1 of 2 day(s) scored; failed: {empty}" in res.output
    assert f"1 of 2 day(s) failed ({empty})" in " ".join(res.output.split())
