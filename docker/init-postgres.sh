#!/usr/bin/env bash
# Passwords come from the secret files (make compose-secrets), never from this repository; psql's :'var'
# quotes them, so any character works.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" \
  -v airflow_password="$(cat /run/secrets/airflow_db_password)" \
  -v nightscore_password="$(cat /run/secrets/nightscore_db_password)" \
  -v scorer_password="$(cat /run/secrets/scorer_db_password)" \
  -f /docker-entrypoint-initdb.d/init-postgres.sql.in
