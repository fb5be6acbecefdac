"""Errors a user can act on: each says what went wrong, where, and how to fix it."""

from __future__ import annotations


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
        super().__init__(" ".join(parts))


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
