"""Run Airflow on nightscore's embedded defaults: what ``make airflow`` does.

``airflow standalone`` (api-server, scheduler, dag-processor, triggerer; LocalExecutor) with
``AIRFLOW_HOME=.nightscore/airflow``, this project's ``dags/`` and no example DAGs. Airflow's own metadata
lives in the database ``nightscore_airflow`` on nightscore's PostgreSQL server (the embedded one unless
``NIGHTSCORE_DATABASE_URL`` names another): on SQLite, the scheduler and the API raced for the one write
lock ("Database is locked", and once a scheduler that died on a StaleDataError). The login is ``admin``
with a password generated once and kept in ``.nightscore/airflow/passwords.json``. The system test starts
Airflow through the same :func:`airflow_env` and :func:`metadata_database`.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
USER = "admin"


def _secrets(airflow_home: Path) -> dict[str, str]:
    """The admin password and the JWT secret every component must share, made once per AIRFLOW_HOME."""
    airflow_home.mkdir(parents=True, exist_ok=True)
    path = airflow_home / "nightscore-secrets.json"
    if path.exists():
        return json.loads(path.read_text())
    values = {"password": secrets.token_urlsafe(12), "jwt_secret": secrets.token_urlsafe(32)}
    path.write_text(json.dumps(values))
    path.chmod(0o600)
    return values


def metadata_database(server_url: str, name: str = "nightscore_airflow") -> str:
    """Airflow's metadata database on the PostgreSQL server of ``server_url`` (created if missing), as the
    SQLAlchemy URL Airflow wants."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    from pipeline import db

    try:
        url = make_url(db.ensure_database(server_url, name))
    except sa.exc.DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise SystemExit(
            f"could not prepare Airflow's metadata database {name!r} on {db.safe_url(server_url)}: {reason}. "
            f"Check the server and NIGHTSCORE_DATABASE_URL; if the role may not create databases, create it yourself "
            f"(CREATE DATABASE {name} OWNER <the URL's role>) or give the role CREATEDB."
        ) from None
    return url.set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)


def airflow_env(
    airflow_home: Path,
    metadata_url: str,
    *,
    port: int = 8080,
    host: str = "127.0.0.1",
    log_ports: tuple[int, int] = (8793, 8794),
    base: dict[str, str] | None = None,
) -> dict[str, str]:
    """Environment for every Airflow process of a local deployment on ``host:port``.

    ``metadata_url`` is Airflow's metadata database (:func:`metadata_database`); ``log_ports`` are where the
    worker and the triggerer serve task logs to the api-server."""
    sec = _secrets(airflow_home)
    passwords = airflow_home / "passwords.json"
    passwords.write_text(json.dumps({USER: sec["password"]}))
    passwords.chmod(0o600)
    env = dict(os.environ if base is None else base)
    env.update(
        {
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://{host}:{port}/execution/",
            "AIRFLOW__API__HOST": host,
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://{host}:{port}",
            "AIRFLOW__API_AUTH__JWT_SECRET": sec["jwt_secret"],
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(log_ports[0]),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(log_ports[1]),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url,
            "NIGHTSCORE_HOME": env.get("NIGHTSCORE_HOME") or str(PROJECT_ROOT / ".nightscore"),
            # standalone starts its components as `airflow ...`: use this environment's executable
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        }
    )
    # A task's supervisor notices the task process has ended on its next wake-up, and without output it sleeps
    # [workers] min_heartbeat_interval (5 s) at a time: about half the tasks here each lost 5.1 s after their
    # last line. 1 s (the least it takes) bounds that loss at 1 s, for a heartbeat a second per running task.
    env.setdefault("AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL", "1")
    return env


def wait_healthy(url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    """Wait until the api-server answers its health endpoint."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"Airflow exited with code {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise TimeoutError(f"Airflow's api-server did not answer at {url} within {timeout:.0f} s")


def stop_group(proc: subprocess.Popen) -> None:
    """Stop standalone and every component it started (they share its process group)."""
    for sig, wait in ((signal.SIGINT, 60), (signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            os.killpg(proc.pid, 0)  # still a member alive?
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            return
        time.sleep(1)


def _local_env(home: Path, host: str, port: int) -> dict[str, str]:
    """The environment of ``make airflow``'s deployment (starting the embedded PostgreSQL if it is down)."""
    from pipeline import db
    from pipeline.config import load_settings

    settings = load_settings()
    server = settings.database_url or db.start_embedded(settings.home)
    name = os.environ.get("NIGHTSCORE_AIRFLOW_DATABASE", "nightscore_airflow")
    return airflow_env(home.resolve(), metadata_database(server, name), port=port, host=host)


def _defaults() -> tuple[str, int, Path]:
    home = os.environ.get("NIGHTSCORE_AIRFLOW_HOME") or PROJECT_ROOT / ".nightscore" / "airflow"
    return os.environ.get("NIGHTSCORE_AIRFLOW_HOST", "127.0.0.1"), int(os.environ.get("NIGHTSCORE_AIRFLOW_PORT", "8080")), Path(home)


def cli(args: list[str]) -> int:
    """``bin/airflow ARGS``: the ``airflow`` command with ``make airflow``'s settings (its AIRFLOW_HOME, metadata
    database, DAG folder and API address), for a second terminal beside it. Replaces this process."""
    host, port, home = _defaults()
    env = _local_env(home, host, port)
    os.execve(sys.executable, [sys.executable, "-m", "airflow", *args], env)
    return 1  # not reached


def main() -> int:
    if sys.argv[1:2] == ["cli"]:
        return cli(sys.argv[2:])
    host, port, home = _defaults()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default=host)
    ap.add_argument("--port", type=int, default=port)
    ap.add_argument("--home", type=Path, default=home)
    args = ap.parse_args()
    env = _local_env(args.home, args.host, args.port)
    url = f"http://{args.host}:{args.port}"
    proc = subprocess.Popen([sys.executable, "-m", "airflow", "standalone"], env=env, start_new_session=True)
    try:
        wait_healthy(url, 300, proc)
        password = _secrets(args.home.resolve())["password"]
        print(
            f"\n  nightscore: Airflow is up at {url}\n  login: {USER} / {password}   (kept in {args.home / 'passwords.json'})\n"
            f"  DAGs: score_<job> and train_<job>, paused until you switch them on. Ctrl-C stops everything.\n"
            f"  In a second terminal, bin/airflow is the airflow command for this deployment (bin/airflow dags list).\n",
            flush=True,
        )
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        stop_group(proc)


if __name__ == "__main__":
    sys.exit(main())
