"""Errors a user can act on: each says what went wrong, where, and how to fix it.

:func:`explain` turns any other exception (a lost database, a full disk, an S3 endpoint gone, a model file
XGBoost cannot read) into such a paragraph, keeping the original as ``__cause__`` for ``--debug`` and the
log; :func:`redact` keeps passwords out of every message.
"""

from __future__ import annotations

import re

_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s'\"]*:)(?P<secret>[^@\s'\"]+)(?=@)", re.IGNORECASE)
_KV_PASSWORD = re.compile(
    r"(?P<head>\b(?:password|passwd|secret_access_key|aws_secret_access_key)\s*[=:]\s*)(?P<secret>[^\s'\",;&]+)", re.I
)
_SECRETS: set[str] = set()


def register_secret(value: str | None) -> None:
    """A value never to print (a password or key from the settings); it is masked wherever it appears."""
    if value and len(value) >= 4:
        _SECRETS.add(value)


def redact(text: str) -> str:
    """``text`` without passwords: in URLs (``user:***@``), ``password=...`` pairs, and registered secrets."""
    text = _URL_PASSWORD.sub(lambda m: m["head"] + "***", text)
    text = _KV_PASSWORD.sub(lambda m: m["head"] + "***", text)
    for secret in _SECRETS:
        text = text.replace(secret, "***")
    return text


class NightscoreError(Exception):
    """Base error. ``str(err)`` is a one-paragraph message meant for a person."""

    def __init__(self, what: str, *, where: str | None = None, fix: str | None = None) -> None:
        self.what = what
        self.where = where
        self.fix = fix
        parts = [what.rstrip(".") + "."]
        if where:
            parts.append(f"Where: {where}.")
        if fix:
            parts.append(f"Fix: {fix.rstrip('.')}.")
        super().__init__(redact(" ".join(parts)))


class UsageError(NightscoreError):
    """The command was given a value it cannot use (a malformed day, an unknown choice, a day not over yet):
    exit code 2, like an unknown option, and nothing was run or recorded."""


class ConfigError(NightscoreError):
    """A setting or environment variable is missing or malformed."""


class JobSpecError(NightscoreError):
    """A job spec file is invalid or the job does not exist."""


class DatabaseUnavailable(NightscoreError):
    """PostgreSQL could not be reached."""


class ModelError(NightscoreError):
    """No model registered, unknown version, or a model failed its checksum."""


class ValidationFailed(NightscoreError):
    """The partition broke its feature contract; nothing was published."""

    def __init__(self, what: str, *, summary: list[dict] | None = None, **kw) -> None:
        super().__init__(what, **kw)
        self.summary = summary or []


class SourceError(NightscoreError):
    """The source query failed or returned something unusable."""


class StorageError(NightscoreError):
    """The artifact store (a folder or an S3 endpoint) cannot be read or written."""


class PublishTimeout(NightscoreError):
    """The publish could not take its locks before its deadline; the published day is unchanged."""


class Interrupted(BaseException):
    """SIGTERM or SIGINT arrived while a run worked: it ends as ``interrupted`` after cleaning up."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(f"interrupted by {signal_name}")
        self.signal_name = signal_name


def first_line(exc: BaseException) -> str:
    """The first line of an error's text (a driver's own where it wraps one), secrets masked."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return redact(text.splitlines()[0] if text else type(exc).__name__)


def explain(exc: BaseException, *, stage: str | None = None, where: str | None = None) -> NightscoreError:
    """A :class:`NightscoreError` for ``exc``: itself if it is one, else a paragraph by the kind of failure."""
    if isinstance(exc, NightscoreError):
        return exc
    during = f" during {stage}" if stage else ""
    line = first_line(exc)
    module = type(exc).__module__ or ""
    name = type(exc).__name__
    if _is_database_error(exc):
        if "permission denied" in line or "must be owner" in line:
            return NightscoreError(
                f"PostgreSQL refused an operation{during}: {line}",
                where=where or "the database",
                fix="run the pipeline as a login granted nightscore_writer, after `nightscore init` has run as the database owner; "
                "see docs/database.md, Roles",
            )
        if not _is_connection_error(exc, line):
            return NightscoreError(
                f"PostgreSQL rejected a statement{during}: {line}",
                where=where or "the database",
                fix="rerun with --debug (or read the task log) for the statement; if the schema was changed by hand, run `nightscore init`",
            )
        never = any(w in line.lower() for w in ("failed to connect", "could not connect", "connection refused", "no such file"))
        return DatabaseUnavailable(
            f"{'cannot connect to' if never else 'lost the connection to'} PostgreSQL{during} ({line})",
            where=where or "the database",
            fix="check that the server is up (pg_isready) and reachable, then rerun; the published data was left as it was",
        )
    if module.startswith(("botocore", "boto3", "s3transfer")):
        return StorageError(
            f"the S3 artifact store failed{during}: {line}",
            where=where or "AWS_ENDPOINT_URL",
            fix="check that the S3 endpoint is up, the bucket exists and the credentials are right, then rerun",
        )
    if isinstance(exc, OSError) and getattr(exc, "filename", None):
        return StorageError(
            f"cannot write or read {exc.filename}{during}: {exc.strerror or line}",
            where=str(exc.filename),
            fix="make that folder writable by this user and check the disk has room, or point NIGHTSCORE_HOME / "
            "NIGHTSCORE_ARTIFACT_URI elsewhere",
        )
    if module.startswith("xgboost"):
        return ModelError(
            f"XGBoost could not use the model{during}: {line}",
            where=where or "the model registry",
            fix="register a model saved by XGBoost itself (.ubj or .json; `nightscore train`), or pin another version",
        )
    return NightscoreError(
        f"unexpected error{during}: {name}: {line}",
        where=where,
        fix="rerun with --debug (or read the task log) for the traceback; if it persists, report it with that traceback",
    )


def _is_connection_error(exc: BaseException, line: str) -> bool:
    names = {type(e).__name__ for e in (exc, getattr(exc, "orig", None), exc.__cause__) if e is not None}
    words = ("connection", "server closed", "terminating", "shutdown", "could not connect", "no such file", "timeout expired")
    return bool(names & {"OperationalError", "InterfaceError", "AdminShutdown"}) or any(w in line.lower() for w in words)


def _is_database_error(exc: BaseException) -> bool:
    module = type(exc).__module__ or ""
    if module.startswith(("sqlalchemy", "psycopg2", "adbc_driver")):
        return True
    cause = exc.__cause__ or exc.__context__
    return cause is not None and cause is not exc and (type(cause).__module__ or "").startswith(("psycopg2", "adbc_driver"))


class ShardsFailed(NightscoreError):
    """A shard of the day failed; nothing was published."""
