"""SQL a person can paste into psql: a named query of ``sql/queries`` with its bind parameters written as literals.

The commands print such a line where a person will want to look further (``nightscore runs --show`` names
the run's quarantined rows; ``nightscore quickstart`` suggests a first query of the predictions). The query
lives in its own file like every other, runnable with :func:`pipeline.db.query`; here its comment lines are
dropped, its lines joined into one, each ``:name`` replaced by the value as a quoted literal, and a ``;`` added.
"""

from __future__ import annotations

import re
from datetime import date

from pipeline.config import SQL_DIR
from pipeline.errors import NightscoreError

_BIND = re.compile(r"(?<![:\w]):(\w+)\b")


def _literal(value: str | date | int) -> str:
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def psql_line(name: str, **values: str | date | int) -> str:
    """The query ``sql/queries/<name>.sql`` as one line for psql, each bind parameter replaced by its value."""
    path = SQL_DIR / "queries" / f"{name}.sql"
    lines = [line.strip() for line in path.read_text().splitlines()]
    text = " ".join(line for line in lines if line and not line.startswith("--"))

    def sub(m: re.Match[str]) -> str:
        if m.group(1) not in values:
            raise NightscoreError(f"the query {name!r} uses :{m.group(1)} but no value was given for it", where=str(path))
        return _literal(values[m.group(1)])

    return _BIND.sub(sub, text).rstrip(";") + ";"
