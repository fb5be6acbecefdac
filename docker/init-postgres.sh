#!/usr/bin/env bash
# Passwords come from the environment (.env), never from this repository.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" \
  -v airflow_password="$AIRFLOW_DB_PASSWORD" -v nightscore_password="$NIGHTSCORE_DB_PASSWORD" \
  -f /docker-entrypoint-initdb.d/init-postgres.sql.in
