"""PostgreSQL: the embedded server, engines, the migrations runner, named SQL, and ADBC connections.

SQLAlchemy Core (psycopg2) carries DDL, the publish swap, the registry and run records;
bulk data moves as Arrow through the ADBC PostgreSQL driver (COPY BINARY underneath).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator
from contextlib import closing, contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import URL, Engine, make_url

from pipeline.config import SQL_DIR, Settings
from pipeline.errors import ConfigError, DatabaseUnavailable

if TYPE_CHECKING:
    from adbc_driver_postgresql import dbapi as adbc_dbapi

log = logging.getLogger(__name__)

EMBEDDED_DB_NAME = "nightscore"
MIGRATIONS_LOCK_KEY = 0x6E5F6D6967  # "n_mig": one cluster-wide advisory lock for migrations


# --------------------------------------------------------------------------------------------
# Where the database is
# --------------------------------------------------------------------------------------------
def start_embedded(home: Path) -> str:
    """Start (or reuse) the embedded PostgreSQL under ``home/pgdata``; return its URL (database ``nightscore``).

    It keeps running after this process exits so the next command is fast; ``nightscore stop`` stops it.
    """
    from pipeline.embedded import EmbeddedServer

    pgdata = home / "pgdata"
    try:
        base = EmbeddedServer(pgdata).start()
    except Exception as exc:
        raise DatabaseUnavailable(
            f"could not start the embedded PostgreSQL: {exc}",
            where=str(pgdata),
            fix=f"read {pgdata / 'log'}; delete {pgdata} to start afresh, or set NIGHTSCORE_DATABASE_URL to a server of yours",
        ) from exc
    return ensure_database(base, EMBEDDED_DB_NAME)


def ensure_database(server_url: str, name: str) -> str:
    """The URL of the database ``name`` on the server of ``server_url``, created there if missing."""
    url = make_url(server_url)
    admin = sa.create_engine(url.set(drivername="postgresql+psycopg2"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if not conn.execute(query("find_database"), {"n": name}).scalar():
                conn.execute(query_with_identifiers("create_database", database=name))
    finally:
        admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def drop_database(server_url: str, name: str) -> None:
    """Drop the database ``name`` on the server of ``server_url`` if it exists, ending its sessions (a test's,
    the load's or a deployment's scratch database; never one of nightscore's own)."""
    admin = sa.create_engine(make_url(server_url).set(drivername="postgresql+psycopg2"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(query_with_identifiers("drop_database", database=name))
    finally:
        admin.dispose()


def stop_embedded(home: Path) -> bool:
    """Stop the embedded server if it runs. Returns whether one was running."""
    from pipeline.embedded import EmbeddedServer

    return EmbeddedServer(home / "pgdata").stop()


def database_url(settings: Settings) -> str:
    """The URL to use: the configured one, or the embedded server's (started on demand)."""
    if settings.database_url:
        return settings.database_url
    return start_embedded(settings.home)


def safe_url(url: str) -> str:
    """The URL with its password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable URL>"


def _sqlalchemy_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ConfigError(
            "the database URL cannot be parsed", where="NIGHTSCORE_DATABASE_URL", fix="use postgresql://user:password@host:5432/dbname"
        ) from exc
    return parsed.set(drivername="postgresql+psycopg2")


def libpq_uri(url: str) -> str:
    """A plain libpq URI (what ADBC and psql take) for a SQLAlchemy-style URL."""
    return _sqlalchemy_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


_ENGINES: dict[str, Engine] = {}
_INHERITED: list[Any] = []


def forget_inherited_engines() -> None:
    """In a forked worker: leave the parent's pooled connections alone (they are its sessions) and open
    new ones from here on. The old pools stay referenced until the worker's ``os._exit``: a connection
    garbage-collected here would send PostgreSQL a goodbye on the parent's socket."""
    for eng in _ENGINES.values():
        _INHERITED.append(eng.pool)
        eng.dispose(close=False)
    _ENGINES.clear()


def _engine_for(url: str) -> Engine:
    if url not in _ENGINES:
        _ENGINES[url] = sa.create_engine(_sqlalchemy_url(url), pool_pre_ping=True, pool_size=2, max_overflow=4)
    return _ENGINES[url]


def engine(settings: Settings) -> Engine:
    """A pooled engine for ``settings``; raises :class:`DatabaseUnavailable` with a useful message."""
    url = database_url(settings)
    eng = _engine_for(url)
    try:
        with eng.connect() as conn:
            conn.execute(query("ping_database"))
    except sa.exc.OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise DatabaseUnavailable(
            f"cannot connect to PostgreSQL ({reason})",
            where=safe_url(url),
            fix="start the server or correct NIGHTSCORE_DATABASE_URL (unset it to use the embedded database under .nightscore/)",
        ) from None
    return eng


@contextmanager
def adbc_connect(settings: Settings) -> Iterator[adbc_dbapi.Connection]:
    """An ADBC connection (autocommit off) to the same database."""
    from adbc_driver_postgresql import dbapi

    conn = dbapi.connect(libpq_uri(database_url(settings)))
    try:
        yield conn
    finally:
        conn.close()


# --------------------------------------------------------------------------------------------
# Named SQL and migrations
# --------------------------------------------------------------------------------------------
@cache
def query_text(name: str) -> str:
    """The text of ``sql/queries/<name>.sql`` as it is, read once per process: for a DB-API cursor (the few
    files written with psycopg2's ``%(name)s`` parameters) or a script."""
    return (SQL_DIR / "queries" / f"{name}.sql").read_text()


@cache
def query(name: str) -> sa.TextClause:
    """The named query ``sql/queries/<name>.sql`` as a SQLAlchemy text clause with bind parameters."""
    return sa.text(query_text(name))


def query_with_identifiers(name: str, **identifiers: str) -> sa.TextClause:
    """The named query whose ``{placeholder}`` names a database, schema or table (an identifier cannot be a
    bind parameter): each filled with its identifier, always double-quoted and escaped by SQLAlchemy's
    PostgreSQL quoting. Values never go in a placeholder; they are bind parameters."""
    quote = postgresql.dialect().identifier_preparer.quote_identifier
    return sa.text(query_text(name).format_map({key: quote(value) for key, value in identifiers.items()}))


def migration_files() -> list[Path]:
    files = sorted(p for p in (SQL_DIR / "migrations").glob("*.sql") if re.match(r"^\d{3}_", p.name))
    numbers = [p.name[:3] for p in files]
    if len(numbers) != len(set(numbers)):
        raise ConfigError("two migrations share a number", where=str(SQL_DIR / "migrations"), fix="renumber them")
    return files


def migrate(eng: Engine) -> list[str]:
    """Apply every migration not yet applied, in order, each in its own transaction, under a lock.

    Returns the names applied now. Safe to run concurrently and repeatedly. When every migration is
    applied already it only reads ``schema_migrations`` (no lock, no DDL), so a login with the writer role
    passes; one that would have to apply a migration it may not gets a clear error.
    """
    pending = pending_migrations(eng)
    if not pending:
        return []
    try:
        return _apply_migrations(eng)
    except sa.exc.ProgrammingError as exc:
        if "permission denied" not in str(exc.orig) and "must be owner" not in str(exc.orig):
            raise
        raise ConfigError(
            f"{len(pending)} migration(s) are not applied ({', '.join(p.name for p in pending)}) and this login may not apply them "
            f"({str(exc.orig).strip().splitlines()[0]})",
            where=safe_url(eng.url.render_as_string(hide_password=False)),
            fix="run `nightscore init` once as the database owner (an admin login); the pipeline's own login needs only the "
            "nightscore_writer role",
        ) from None


def pending_migrations(eng: Engine) -> list[Path]:
    """The migration files not yet recorded in ``schema_migrations``."""
    with eng.connect() as conn:
        if conn.execute(query("find_migrations_table")).scalar() is None:
            return migration_files()
        done = {r.version for r in conn.execute(query("list_applied_migrations"))}
    return [p for p in migration_files() if p.name[:3] not in done]


def _apply_migrations(eng: Engine) -> list[str]:
    applied_now: list[str] = []
    with eng.connect() as conn:
        conn.execute(query("lock_migrations"), {"k": MIGRATIONS_LOCK_KEY})
        try:
            conn.execute(query("create_schema_migrations"))
            conn.commit()
            done = {r.version: r.sha256 for r in conn.execute(query("list_migration_digests"))}
            conn.commit()
            for path in migration_files():
                text = path.read_text()
                digest = hashlib.sha256(text.encode()).hexdigest()
                version = path.name[:3]
                if version in done:
                    if done[version] != digest:
                        log.warning("migration %s changed after it was applied; not re-applied", path.name)
                    continue
                with conn.begin():
                    run_script(conn, text)
                    conn.execute(query("insert_schema_migration"), {"v": version, "n": path.name, "s": digest})
                applied_now.append(path.name)
        finally:
            if conn.in_transaction():
                conn.rollback()
            conn.execute(query("unlock_migrations"), {"k": MIGRATIONS_LOCK_KEY})
            conn.commit()
    return applied_now


def run_script(conn: sa.Connection, text: str) -> None:
    """Run a multi-statement SQL file as is (no parameter interpolation, so ``%`` is literal)."""
    with closing(conn.connection.cursor()) as cur:
        cur.execute(text)


def ready_engine(settings: Settings) -> Engine:
    """An engine on a database whose migrations are all applied."""
    eng = engine(settings)
    migrate(eng)
    return eng


def fetch_one(eng: Engine, query_name: str, **params: Any) -> sa.Row | None:
    with eng.connect() as conn:
        return conn.execute(query(query_name), params).first()


def dispose_all() -> None:
    """Close every pooled connection this process holds (before dropping or copying a database)."""
    for eng in list(_ENGINES.values()):
        eng.dispose()
    _ENGINES.clear()
