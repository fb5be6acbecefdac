"""Prepare the docker compose stack's secrets: what ``make compose-secrets`` does.

Each secret is one file under ``secrets/`` (git-ignored), holding the value and nothing else, so a password
may contain any character (``@ / : # % " '`` and spaces included): no person pastes it into a URL or JSON.
The containers read these files at ``/run/secrets/<name>`` (compose ``secrets:``) and build every URL and
JSON document from them with a library that escapes (:mod:`docker.secret_url`, SQLAlchemy, :mod:`json`).

A missing file is filled with a random value; an existing one is never changed, so edit a file to choose a
value of your own. Also writes ``AIRFLOW_UID`` (this user's id, as Airflow's own compose file asks) into
``.env`` when it is not there yet.
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

#: name -> how to make a value when the file is missing
SECRETS = {
    "postgres_password": lambda: secrets.token_urlsafe(24),  # the server's superuser
    "airflow_db_password": lambda: secrets.token_urlsafe(24),  # Airflow's metadata database
    "nightscore_db_password": lambda: secrets.token_urlsafe(24),  # the nightscore database's owner (airflow-init only)
    "scorer_db_password": lambda: secrets.token_urlsafe(24),  # the tasks' login, granted only nightscore_writer
    "s3_secret_key": lambda: secrets.token_urlsafe(30),  # SeaweedFS's admin identity (access key: AWS_ACCESS_KEY_ID)
    "airflow_admin_password": lambda: secrets.token_urlsafe(16),  # the UI's `admin` login
    "airflow_jwt_secret": lambda: secrets.token_urlsafe(32),  # shared by every Airflow component
    "airflow_fernet_key": lambda: base64.urlsafe_b64encode(os.urandom(32)).decode(),  # a valid Fernet key
}


def prepare(root: Path) -> list[str]:
    """Create the missing secret files and ``AIRFLOW_UID``; return what was created."""
    made = []
    folder = root / "secrets"
    folder.mkdir(exist_ok=True)
    folder.chmod(0o700)  # only this user reaches the files on the host ...
    for name, make in SECRETS.items():
        path = folder / name
        if not path.exists():
            path.write_text(make())
            made.append(f"secrets/{name}")
        # ... and the containers' own users (postgres, airflow, SeaweedFS) can read the file mounted for them
        path.chmod(0o644)
    env = root / ".env"
    lines = env.read_text().splitlines() if env.exists() else []
    if not any(line.startswith("AIRFLOW_UID=") for line in lines):
        with env.open("a") as fh:
            fh.write(f"AIRFLOW_UID={os.getuid()}\n")
        made.append(f".env: AIRFLOW_UID={os.getuid()}")
    return made


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=PROJECT_ROOT, help="the folder holding docker-compose.yml")
    args = parser.parse_args(argv)
    made = prepare(args.root)
    for item in made:
        print(f"created {item}")
    print("secrets ready in secrets/ (the UI login is admin / the password in secrets/airflow_admin_password)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
