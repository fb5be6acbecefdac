"""Days in a job's queries and on the command line: ``:ds``, ``:start`` and ``:end`` rendered as typed
literals, and a ``YYYY-MM-DD`` read with a clear error."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

from pipeline.errors import JobSpecError, UsageError

_BIND_RE = re.compile(r"(?<![:\w]):(ds|start|end)\b")


def render_binds(text: str, *, ds: date | None = None, start: date | None = None, end: date | None = None, plain: bool = False) -> str:
    """Replace ``:ds``, ``:start`` and ``:end`` with typed literals.

    The values are ``date`` objects, never user text, so the literals are safe by construction;
    a plain query (no server-side parameters) lets the ADBC driver use COPY BINARY.
    In a scoring query (``ds`` given) ``:start``/``:end`` are the day's data interval as
    ``TIMESTAMPTZ`` [ds 00:00 UTC, ds+1 00:00 UTC); in a training query they are the window's
    first day and the day after its last, as ``DATE``.
    """
    interval = ds is not None
    if ds is not None:
        start = start or ds
        end = end or ds + timedelta(days=1)
    values = {"ds": ds, "start": start, "end": end}

    def sub(m: re.Match[str]) -> str:
        v = values[m.group(1)]
        if v is None:
            raise JobSpecError(
                f"the query uses :{m.group(1)} but no value is available for it",
                fix="use :ds in scoring queries and :start/:end in training queries",
            )
        if m.group(1) == "ds" or not interval:
            return f"'{v.isoformat()}'" if plain else f"DATE '{v.isoformat()}'"
        stamp = datetime.combine(v, time(0), tzinfo=UTC).isoformat()
        return f"'{stamp}'" if plain else f"TIMESTAMPTZ '{stamp}'"

    return _BIND_RE.sub(sub, text)


def parse_ds(text: str, where: str = "--ds") -> date:
    """Parse a partition date ``YYYY-MM-DD`` with a clear error."""
    try:
        return date.fromisoformat(text)
    except (TypeError, ValueError):
        raise UsageError(f"{text!r} is not a date", where=where, fix="give the day as YYYY-MM-DD, e.g. 2026-11-20") from None
