"""docker-compose.yml: valid for `docker compose config` when the client has it, and structurally sound always."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from pipeline.config import PROJECT_ROOT

COMPOSE = PROJECT_ROOT / "docker-compose.yml"
AIRFLOW_SERVICES = {
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
}
LONG_RUNNING = {"postgres", "redis", "minio"} | AIRFLOW_SERVICES - {"airflow-init"}
ENV = {
    k: "x"
    for k in (
        "POSTGRES_PASSWORD",
        "AIRFLOW_DB_PASSWORD",
        "NIGHTSCORE_DB_PASSWORD",
        "MINIO_ROOT_USER",
        "MINIO_ROOT_PASSWORD",
        "AIRFLOW_JWT_SECRET",
        "AIRFLOW_FERNET_KEY",
    )
}


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _compose_plugin() -> bool:
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0


def test_every_service_is_there_and_references_exist():
    services = _compose()["services"]
    assert AIRFLOW_SERVICES | {"postgres", "redis", "minio", "minio-init"} <= set(services)
    for name, svc in services.items():
        for dep in svc.get("depends_on", {}):
            assert dep in services, f"{name} depends on unknown service {dep}"
    assert services["airflow-worker"]["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert "endpoint_url" in services["airflow-worker"]["environment"]["AIRFLOW_CONN_NIGHTSCORE_S3"]


def test_images_are_pinned_and_healthchecks_present():
    services = _compose()["services"]
    for name, svc in services.items():
        image = svc["image"]
        assert re.search(r":[\w.\-]+$", image) and not image.endswith(":latest"), f"{name}: image {image} is not pinned"
    assert services["minio"]["image"].startswith("minio/minio:RELEASE.")
    assert services["airflow-apiserver"]["build"]["dockerfile"] == "docker/Dockerfile"
    for name in LONG_RUNNING:
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    assert "3.3" in (PROJECT_ROOT / "docker" / "Dockerfile").read_text().split("FROM", 1)[1].splitlines()[0]


def test_no_secret_is_written_in_the_file():
    text = COMPOSE.read_text()
    for var in ("POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD", "AIRFLOW_JWT_SECRET", "AIRFLOW_FERNET_KEY"):
        assert re.search(rf"\${{{var}[:}}]", text), f"{var} must come from .env"


@pytest.mark.skipif(not _compose_plugin(), reason="no `docker compose` plugin here: the structural tests above stand in for it")
def test_docker_compose_config():
    env_file = PROJECT_ROOT / ".env"
    created = not env_file.exists()
    if created:
        env_file.write_text("".join(f"{k}={v}\n" for k, v in ENV.items()))
    try:
        res = subprocess.run(
            ["docker", "compose", "-f", str(COMPOSE), "config", "--quiet"],
            capture_output=True,
            text=True,
            env={**ENV, "PATH": "/usr/bin:/bin:/usr/local/bin"},
        )
    finally:
        if created:
            env_file.unlink()
    assert res.returncode == 0, res.stderr


def test_published_ports_are_on_loopback_unless_asked():
    for name, svc in _compose()["services"].items():
        for port in svc.get("ports", []):
            assert str(port).startswith("${NIGHTSCORE_BIND:-127.0.0.1}:"), f"{name} publishes {port} on every interface"


def test_airflow_services_as_the_official_file_runs_them():
    """The settings of Airflow 3.3's own docker-compose file that a working stack needs."""
    services = _compose()["services"]
    scheduler = services["airflow-scheduler"]
    assert "8974/health" in " ".join(scheduler["healthcheck"]["test"])
    assert scheduler["environment"]["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "true"  # else /health never answers
    worker = services["airflow-worker"]
    assert worker["environment"]["DUMB_INIT_SETSID"] == "0"  # Celery's warm shutdown
    assert worker["depends_on"]["airflow-apiserver"] == {"condition": "service_healthy"}
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        assert services[name]["healthcheck"].get("start_period"), f"{name}: no start_period"
        assert "airflow-logs:/opt/airflow/logs" in " ".join(services[name]["volumes"]), f"{name}: task logs die with the container"
