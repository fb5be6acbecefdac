"""Settings from the environment: secrets read from files survive any character on their way to libpq and boto3."""

from __future__ import annotations

import psycopg2.extensions
import pytest

from pipeline.config import load_settings
from pipeline.db import libpq_uri, safe_url
from pipeline.errors import ConfigError

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
