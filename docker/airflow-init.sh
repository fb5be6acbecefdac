#!/usr/bin/env bash
# airflow-init (as root, like Airflow's own compose file): folders owned by AIRFLOW_UID, Airflow's metadata
# schema, nightscore's schema and roles, and the UI's password file from secrets/airflow_admin_password.
set -euo pipefail
if [[ -z "${AIRFLOW_UID:-}" ]]; then
  echo "WARNING: AIRFLOW_UID is not set (make compose-secrets writes it into .env); files will belong to uid 50000"
  AIRFLOW_UID=50000
fi
mkdir -p /opt/airflow/logs /opt/airflow/auth "${NIGHTSCORE_HOME}"
airflow version
airflow db migrate
nightscore init
umask 0077
python /opt/nightscore/docker/secrets.py passwords admin=/run/secrets/airflow_admin_password > /opt/airflow/auth/passwords.json
# the simple auth manager opens its file for writing at every login: it must belong to the Airflow user
chown -R "${AIRFLOW_UID}:0" /opt/airflow/logs /opt/airflow/auth "${NIGHTSCORE_HOME}"
echo "airflow-init done: log in as admin with the password in secrets/airflow_admin_password"
