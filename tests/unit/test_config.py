"""Settings from the environment: secrets read from files survive any character on their way to libpq and boto3."""

from __future__ import annotations

import socket

import psycopg2.extensions
import pytest

from pipeline import config
from pipeline.config import load_settings
from pipeline.db import libpq_uri, safe_url
from pipeline.errors import ConfigError

pytestmark = pytest.mark.unit

NASTY = "p@ss/w:rd#1?%20\"quoted\" 'single' \\back $HOME é"


def test_database_password_file_reaches_libpq_intact(tmp_path):
    secret = tmp_path / "db_password"
    secret.write_text(NASTY + "\n")  # editors add a final newline; it is not part of the password
    settings = load_settings(
        {
            "NIGHTSCORE_HOME": str(tmp_path),
            "NIGHTSCORE_DATABASE_URL": "postgresql://nightscore@db.example:5432/nightscore",
            "NIGHTSCORE_DATABASE_PASSWORD_FILE": str(secret),
        }
    )
    # libpq's own parser (PQconninfoParse) reads back exactly the password and the rest of the URL
    parsed = psycopg2.extensions.parse_dsn(libpq_uri(settings.database_url))
    assert parsed == {"user": "nightscore", "password": NASTY, "host": "db.example", "port": "5432", "dbname": "nightscore"}
    assert NASTY not in safe_url(settings.database_url)
    assert "NIGHTSCORE_DATABASE_PASSWORD_FILE" not in repr(settings)


def test_password_file_needs_a_url_and_a_readable_file(tmp_path):
    (tmp_path / "x").write_text("secret")
    with pytest.raises(ConfigError, match="NIGHTSCORE_DATABASE_URL is not"):
        load_settings({"NIGHTSCORE_HOME": str(tmp_path), "NIGHTSCORE_DATABASE_PASSWORD_FILE": str(tmp_path / "x")})
    with pytest.raises(ConfigError) as err:
        load_settings(
            {
                "NIGHTSCORE_HOME": str(tmp_path),
                "NIGHTSCORE_DATABASE_URL": "postgresql://u@h/d",
                "NIGHTSCORE_DATABASE_PASSWORD_FILE": str(tmp_path / "missing"),
            }
        )
    assert "missing" in str(err.value) and "cannot be read" in str(err.value)


def test_s3_secret_file_gives_explicit_credentials(tmp_path):
    secret = tmp_path / "s3_secret"
    secret.write_text(NASTY)
    settings = load_settings(
        {"NIGHTSCORE_HOME": str(tmp_path), "AWS_ACCESS_KEY_ID": "nightscore", "AWS_SECRET_ACCESS_KEY_FILE": str(secret)}
    )
    assert (settings.s3_access_key, settings.s3_secret_key) == ("nightscore", NASTY)
    assert NASTY not in repr(settings)
    # without a file, boto3's own credential chain decides
    plain = load_settings({"NIGHTSCORE_HOME": str(tmp_path), "AWS_ACCESS_KEY_ID": "nightscore"})
    assert plain.s3_access_key is None and plain.s3_secret_key is None


def test_ledger_hostname_from_the_variable_else_the_host_name():
    assert config.ledger_hostname({"NIGHTSCORE_HOSTNAME": "worker-2"}) == "worker-2"
    assert config.ledger_hostname({}) == socket.gethostname()
    assert config.ledger_hostname({"NIGHTSCORE_HOSTNAME": ""}) == socket.gethostname()


def test_alert_webhook_url_from_the_variable_the_spec_names():
    assert config.alert_webhook_url("NIGHTSCORE_ALERT_WEBHOOK", {"NIGHTSCORE_ALERT_WEBHOOK": "https://hooks.example/x"}) == (
        "https://hooks.example/x"
    )
    assert config.alert_webhook_url("NIGHTSCORE_ALERT_WEBHOOK", {}) is None
    assert config.alert_webhook_url("NIGHTSCORE_ALERT_WEBHOOK", {"NIGHTSCORE_ALERT_WEBHOOK": ""}) is None


def test_smtp_url_and_sender():
    assert config.smtp_url({"NIGHTSCORE_SMTP_URL": "smtp://u:p@mail.example:587"}) == "smtp://u:p@mail.example:587"
    assert config.smtp_url({}) is None
    assert config.alert_from({"NIGHTSCORE_ALERT_FROM": "alerts@example.com"}) == "alerts@example.com"
    assert config.alert_from({}) == "nightscore@localhost"


def test_failpoint_variables(tmp_path):
    env = {"NIGHTSCORE_FAILPOINT": "swap", "NIGHTSCORE_FAILPOINT_FILE": str(tmp_path / "marker")}
    assert config.failpoint(env) == "swap"
    assert config.failpoint_file(env) == tmp_path / "marker"
    assert config.failpoint({}) is None
    with pytest.raises(ConfigError, match="NIGHTSCORE_FAILPOINT_FILE"):
        config.failpoint_file({"NIGHTSCORE_FAILPOINT": "swap"})


def test_the_functions_read_the_process_environment_by_default(monkeypatch):
    monkeypatch.setenv("NIGHTSCORE_HOSTNAME", "from-env")
    monkeypatch.setenv("NIGHTSCORE_SMTP_URL", "smtp://127.0.0.1:2525")
    monkeypatch.delenv("NIGHTSCORE_ALERT_FROM", raising=False)
    monkeypatch.delenv("NIGHTSCORE_FAILPOINT", raising=False)
    assert config.ledger_hostname() == "from-env"
    assert config.smtp_url() == "smtp://127.0.0.1:2525"
    assert config.alert_from() == "nightscore@localhost"
    assert config.failpoint() is None


def test_jobs_dir_from_the_variable_else_none(tmp_path):
    assert config.jobs_dir_from_env({"NIGHTSCORE_JOBS_DIR": str(tmp_path)}) == tmp_path
    assert config.jobs_dir_from_env({}) is None
    assert config.jobs_dir_from_env({"NIGHTSCORE_JOBS_DIR": ""}) is None


def test_airflow_connection_ids():
    env = {"NIGHTSCORE_POSTGRES_CONN_ID": "pg_prod", "NIGHTSCORE_AWS_CONN_ID": "s3_prod"}
    assert config.airflow_connection_ids(env) == ("pg_prod", "s3_prod")
    assert config.airflow_connection_ids({}) == ("nightscore_postgres", "nightscore_s3")


def test_the_home_is_found_upward_like_git_and_never_made_outside_a_project(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from pipeline.cli import app
    from pipeline.config import find_home
    from pipeline.errors import ConfigError

    project = tmp_path / "project"
    (project / "dags" / "jobs").mkdir(parents=True)
    (project / "pyproject.toml").write_text('[project]\nname = "nightscore"\nversion = "0"\n')
    assert find_home({}, project / "dags" / "jobs") == project / ".nightscore"  # from dags/: never dags/.nightscore
    other = tmp_path / "elsewhere" / "deep"
    other.mkdir(parents=True)
    (tmp_path / "elsewhere" / "pyproject.toml").write_text('[project]\nname = "someone-else"\n')
    with pytest.raises(ConfigError, match="not inside a nightscore project") as err:
        find_home({}, other)
    assert "NIGHTSCORE_HOME" in str(err.value)
    (tmp_path / "elsewhere" / ".nightscore").mkdir()  # a home made before: found from below it
    assert find_home({}, other) == tmp_path / "elsewhere" / ".nightscore"
    assert find_home({"NIGHTSCORE_HOME": str(tmp_path / "h")}, other) == tmp_path / "h"
    assert find_home({}, tmp_path, fallback=project / ".nightscore") == project / ".nightscore"
    # the command line, run outside any project: a message naming NIGHTSCORE_HOME, nothing created
    outside = tmp_path / "outside"
    outside.mkdir()
    monkeypatch.chdir(outside)
    monkeypatch.delenv("NIGHTSCORE_HOME", raising=False)
    res = CliRunner().invoke(app, ["runs"], env={"NIGHTSCORE_HOME": ""})
    assert res.exit_code != 0 and "NIGHTSCORE_HOME" in " ".join(res.output.split()), res.output
    assert "Traceback" not in res.output, res.output
    assert list(outside.iterdir()) == []
