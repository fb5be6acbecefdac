#!/usr/bin/env bash
# airflow-init (as root, like Airflow's own compose file): folders owned by AIRFLOW_UID, Airflow's metadata
# schema, nightscore's schema and roles, and the UI's password file from secrets/airflow_admin_password.
set -euo pipefail
if [[ -z "${AIRFLOW_UID:-}" ]]; then
  echo "WARNING: AIRFLOW_UID is not set (make compose-secrets writes it into .env); files will belong to uid 50000"
  AIRFLOW_UID=50000
fi
# what Airflow's own airflow-init checks: enough memory, CPUs and disk for the stack (a warning, not a stop)
mem_gb=$(( $(getconf _PHYS_PAGES) * $(getconf PAGE_SIZE) / 1024 / 1024 / 1024 ))
cpus=$(nproc)
disk_gb=$(( $(df -k --output=avail / | tail -1) / 1024 / 1024 ))
if (( mem_gb < 4 )); then echo "WARNING: ${mem_gb} GB of memory for Docker; at least 4 GB are needed (8 GB recommended)"; fi
if (( cpus < 2 )); then echo "WARNING: ${cpus} CPU for Docker; at least 2 are recommended"; fi
if (( disk_gb < 10 )); then echo "WARNING: ${disk_gb} GB of free disk for Docker; at least 10 GB are recommended"; fi
mkdir -p /opt/airflow/logs /opt/airflow/auth "${NIGHTSCORE_HOME}"
airflow version
airflow db migrate
nightscore init   # as the database's owner: migrations, roles, the jobs' views
# the tasks' login gets the writer role only (never the owner's CREATEROLE)
python - <<'PY'
import sqlalchemy as sa

from pipeline import db
from pipeline.config import load_settings

with db.engine(load_settings()).begin() as conn:
    conn.execute(sa.text("GRANT nightscore_writer TO scorer"))
PY
umask 0077
python /opt/nightscore/docker/secrets.py passwords admin=/run/secrets/airflow_admin_password > /opt/airflow/auth/passwords.json
# the simple auth manager opens its file for writing at every login: it must belong to the Airflow user
chown -R "${AIRFLOW_UID}:0" /opt/airflow/logs /opt/airflow/auth "${NIGHTSCORE_HOME}"
echo "airflow-init done: log in as admin with the password in secrets/airflow_admin_password"
