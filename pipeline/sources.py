"""Sources: where a job's day of rows is read from, as a stream of Arrow record batches.

One call, :func:`open_source`, whatever the spec's ``source`` names (see docs/sources.md for what each path
costs):

- a query on the predictions database: ADBC PostgreSQL (COPY BINARY, Arrow end to end);
- a query on another database (``connection: NAME``): the URL from ``Settings.connections`` (an Airflow
  Connection, resolved by the task), else ``NIGHTSCORE_CONN_<NAME>`` or the file ``NIGHTSCORE_CONN_<NAME>_FILE``
  names. PostgreSQL, SQLite, Snowflake, BigQuery and Flight SQL go through their ADBC drivers (Arrow
  batches, no Python objects per row); any other SQLAlchemy dialect through SQLAlchemy, streamed
  (``stream_results``) in batches of ``batch_rows`` rows turned into Arrow;
- ``parquet: LOCATION``: the day's Parquet dataset (a folder or an S3 prefix, hive partitions understood),
  found by pyarrow's dataset API and read one row group at a time with only the contract's columns.

Shards: a query on PostgreSQL selects its shard's rows itself (a hash of the key, :mod:`pipeline.shards`);
other engines' rows are read whole by each shard and kept by the same hash computed here. A Parquet dataset is
split by row group instead (shard ``i`` reads row groups ``i, i+n, ...``), so no row is read twice.

Every failure before the first row (a missing partition or column, an unknown connection, a driver that is
not installed, a server that does not answer) is a :class:`SourceError` naming the source and the fix;
credentials are never part of a message (the URL is shown with its password hidden, and registered as a secret).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipeline import keys
from pipeline.config import Settings
from pipeline.errors import SourceError, first_line, register_secret
from pipeline.jobs import JobSpec
from pipeline.jobs.binds import render_binds

ADBC_DRIVERS = {  # URL scheme -> (the ADBC driver's module, its package on PyPI)
    "postgresql": ("adbc_driver_postgresql", "adbc-driver-postgresql"),
    "postgres": ("adbc_driver_postgresql", "adbc-driver-postgresql"),
    "sqlite": ("adbc_driver_sqlite", "adbc-driver-sqlite"),
    "snowflake": ("adbc_driver_snowflake", "adbc-driver-snowflake"),
    "bigquery": ("adbc_driver_bigquery", "adbc-driver-bigquery"),
    "grpc": ("adbc_driver_flightsql", "adbc-driver-flightsql"),
    "grpc+tls": ("adbc_driver_flightsql", "adbc-driver-flightsql"),
}


@dataclass(frozen=True)
class Query:
    """One of a job's queries with its days: the source's (``ds``), the training window's, the outcomes'."""

    path: Path
    what: str  # "the source query of job churn for 2026-11-20": for messages
    binds: dict[str, date]

    def render(self, plain: bool = False) -> str:
        return render_binds(self.path.read_text(), plain=plain, **self.binds)


@dataclass
class Stream:
    """A source's rows for one shard: their schema, then the batches (read lazily, one at a time)."""

    schema: pa.Schema
    batches: Iterator[pa.RecordBatch]
    path: str  # "adbc postgresql", "adbc sqlite", "sqlalchemy mysql", "parquet": how the rows were read


def engine_path(url: str) -> str:
    """How rows are read from a database URL: ``adbc <driver>`` or ``sqlalchemy <dialect>``."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ADBC_DRIVERS:
        return "adbc " + ADBC_DRIVERS[scheme][0].removeprefix("adbc_driver_")
    base = scheme.split("+", 1)[0]
    if base in ("postgresql", "postgres") and scheme.endswith(("psycopg2", "psycopg", "pg8000", "asyncpg")):
        return "adbc postgresql"  # a SQLAlchemy-style PostgreSQL URL still takes the Arrow path
    return "sqlalchemy " + (base or "?")


@contextmanager
def open_source(
    settings: Settings, spec: JobSpec, ds: date, *, shard: int = 0, shards: int = 1, batch_rows: int | None = None, limit: int | None = None
) -> Iterator[Stream]:
    """The rows of ``spec``'s source for ``ds`` (shard ``shard`` of ``shards``), as a :class:`Stream`.
    ``limit``: at most that many rows of a query (0: only its schema)."""
    source = spec.source
    if source.parquet is not None:
        with _parquet(settings, spec, ds, shard, shards, batch_rows or settings.batch_rows) as stream:
            yield stream
        return
    if source.connection is None:
        from pipeline import db
        from pipeline import shards as sharding

        sql = _limited(sharding.shard_sql(spec.source_sql(ds), spec.key_columns, shard, shards), limit)
        with db.adbc_connect(settings) as conn, conn.cursor() as cur:
            cur.execute(sql)
            reader = cur.fetch_record_batch()
            yield Stream(reader.schema, iter(reader), "adbc postgresql")
        return
    query = Query(source.path(spec.spec_dir), f"the source query of job {spec.name!r} for {ds}", {"ds": ds})
    with _connection_stream(settings, spec, query, shard, shards, batch_rows or settings.batch_rows, limit) as stream:
        yield stream


@contextmanager
def _connection_stream(
    settings: Settings, spec: JobSpec, query: Query, shard: int, shards: int, batch_rows: int, limit: int | None
) -> Iterator[Stream]:
    assert spec.source.connection is not None
    url = resolve_connection(settings, spec.source.connection, where=spec.source_where())
    with ExitStack() as stack:
        if engine_path(url).startswith("adbc"):
            stream = stack.enter_context(_adbc(url, spec, query, shard, shards, limit))
        else:  # no rows to infer the key's type from with LIMIT 0: one row instead
            stream = stack.enter_context(_sqlalchemy(url, spec, query, shard, shards, batch_rows, None if limit is None else max(limit, 1)))
        yield stream


def read_query(settings: Settings, spec: JobSpec, file: str, what: str, **binds: date) -> pa.Table:
    """One of the job's other queries (training, outcomes) as a table: on the source's connection when the
    source names one (the labels live beside the features), else on the predictions database."""
    query = Query((spec.spec_dir / file).resolve(), what, dict(binds))
    if spec.source.connection is None:
        from pipeline import db

        with db.adbc_connect(settings) as conn, conn.cursor() as cur:
            cur.execute(query.render())
            return cur.fetch_arrow_table()
    with _connection_stream(settings, spec, query, 0, 1, settings.batch_rows, None) as stream:
        return pa.Table.from_batches(list(stream.batches), schema=stream.schema)


def describe(settings: Settings, spec: JobSpec) -> dict[str, Any]:
    """The source for a run's manifest: its kind, query file or location, the connection's name and the path its
    rows take (``adbc postgresql``, ``sqlalchemy mysql``, ``parquet``); never the connection's URL."""
    source = spec.source
    out: dict[str, Any] = {"kind": source.kind, "sql": source.sql, "connection": source.connection, "parquet": source.parquet}
    if source.kind == "parquet":
        out["read_by"] = "parquet"
    elif source.connection is None:
        out["read_by"] = "adbc postgresql"
    else:
        url = settings.connections.get(source.connection.upper())
        out["read_by"] = engine_path(url) if url else None
    return {k: v for k, v in out.items() if v is not None}


def has_rows(settings: Settings, spec: JobSpec, ds: date) -> bool:
    """Whether the source has any row for ``ds`` (for the message about a day without data)."""
    try:
        with open_source(settings, spec, ds, batch_rows=1, limit=1) as stream:
            return any(b.num_rows for b in stream.batches)
    except SourceError:
        return False


# --------------------------------------------------------------------------------------------
# Connections
# --------------------------------------------------------------------------------------------
def resolve_connection(settings: Settings, name: str, *, where: str) -> str:
    """The URL of connection ``name`` from the settings: ``NIGHTSCORE_CONN_<NAME>`` (:func:`pipeline.config.connection_url`),
    or the Airflow Connection the task resolved. Its password is registered as a secret."""
    url = settings.connections.get(name.upper())
    if not url:
        var = "NIGHTSCORE_CONN_" + name.upper()
        raise SourceError(
            f"the source's connection {name!r} is not configured",
            where=where,
            fix=f"set {var} to its URL (e.g. postgresql://user@host:5432/db, sqlite:////path/to/file.db), or "
            f"{var}_FILE to a file holding it; inside Airflow, add the Airflow Connection {name!r}",
        )
    try:
        from sqlalchemy.engine import make_url

        register_secret(make_url(url).password)
    except Exception:
        pass
    return url


def _safe(url: str) -> str:
    from pipeline.db import safe_url

    return safe_url(url)


def _limited(sql: str, limit: int | None) -> str:
    if limit is None:
        return sql
    from pipeline.shards import subquery

    # stays in code: it wraps the job's own query text; the limit is an int() literal
    return f"SELECT * FROM {subquery(sql)} LIMIT {int(limit)}"


def _unreachable(spec: JobSpec, url: str, exc: BaseException) -> SourceError:
    return SourceError(
        f"cannot connect to the source database of job {spec.name!r} ({_safe(url)}): {first_line(exc)}",
        where=spec.source_where(),
        fix=f"check that the server answers and the URL of connection {spec.source.connection!r} is right",
    )


def _query_failed(spec: JobSpec, query: Query, url: str, exc: BaseException) -> SourceError:
    return SourceError(
        f"{query.what} failed on {_safe(url)}: {first_line(exc)}",
        where=spec.source_where(),
        fix="run the query on that database by hand to see the full error, then correct the query or the source table",
    )


def _hash_filter(batches: Iterator[pa.RecordBatch], columns: list[str], shard: int, shards: int) -> Iterator[pa.RecordBatch]:
    """Keep shard ``shard``'s rows, by the hash PostgreSQL computes for a query source (:mod:`pipeline.shards`)."""
    from pipeline.shards import shard_of

    for batch in batches:
        if shards == 1:
            yield batch
            continue
        ids = keys.entity_ids(batch, columns).to_pylist()
        mask = pa.array([k is not None and shard_of(k, shards) == shard for k in ids])
        yield batch.filter(mask)


@contextmanager
def _adbc(url: str, spec: JobSpec, query: Query, shard: int, shards: int, limit: int | None) -> Iterator[Stream]:
    import importlib

    scheme = url.split("://", 1)[0].lower()
    base = scheme.split("+", 1)[0]
    module, package = ADBC_DRIVERS.get(scheme) or ADBC_DRIVERS[base]
    where = spec.source_where()
    try:
        dbapi = importlib.import_module(module + ".dbapi")
    except ImportError:
        raise SourceError(
            f"connection {spec.source.connection!r} ({base}) needs the ADBC driver {package}, which is not installed",
            where=where,
            fix=f"add {package} to the project's dependencies (uv add {package}), or give a SQLAlchemy URL for the database",
        ) from None
    sql = query.render(plain=module == "adbc_driver_sqlite")  # SQLite has no typed literals
    postgres = module == "adbc_driver_postgresql"
    target: Any = url
    if postgres:  # PostgreSQL filters its shard itself, by the hash the loading table uses
        from pipeline import db
        from pipeline.shards import shard_sql

        target = db.libpq_uri(url)
        sql = shard_sql(sql, spec.key_columns, shard, shards)
    elif module == "adbc_driver_sqlite":  # sqlite:///relative.db or sqlite:////absolute.db, as SQLAlchemy writes them
        target = url.split("://", 1)[1].removeprefix("/") or ":memory:"
    sql = _limited(sql, limit)
    try:
        conn = dbapi.connect(target)
    except Exception as exc:
        raise _unreachable(spec, url, exc) from None
    try:
        cur = conn.cursor()
        try:
            cur.execute(sql)
            reader = cur.fetch_record_batch()
        except Exception as exc:
            raise _query_failed(spec, query, url, exc) from None
        batches = iter(reader) if postgres else _hash_filter(iter(reader), spec.key_columns, shard, shards)
        yield Stream(reader.schema, batches, engine_path(url))
        cur.close()
    finally:
        conn.close()


_ARROW_BY_FEATURE = {"float": pa.float64(), "int": pa.int64(), "bool": pa.bool_(), "category": pa.string()}


@contextmanager
def _sqlalchemy(url: str, spec: JobSpec, query: Query, shard: int, shards: int, batch_rows: int, limit: int | None) -> Iterator[Stream]:
    """Any SQLAlchemy dialect: the query streamed (server-side cursor where the driver has one), ``batch_rows``
    rows at a time made into Arrow with the contract's types (the key's inferred from its first values)."""
    import sqlalchemy as sa

    where = spec.source_where()
    try:
        eng = sa.create_engine(url, poolclass=sa.pool.NullPool)
    except Exception as exc:  # an unknown dialect, a driver not installed
        raise SourceError(
            f"connection {spec.source.connection!r} ({_safe(url)}) cannot be opened: {first_line(exc)}",
            where=where,
            fix="install the database's SQLAlchemy driver, or correct the URL's scheme (dialect+driver://...)",
        ) from None
    sql = _limited(query.render(plain=eng.dialect.name == "sqlite"), limit)
    try:
        conn = eng.connect()
    except Exception as exc:
        raise _unreachable(spec, url, exc) from None
    try:
        try:
            result = conn.execution_options(stream_results=True).exec_driver_sql(sql)
        except Exception as exc:
            raise _query_failed(spec, query, url, exc) from None
        names = list(result.keys())
        first = result.fetchmany(batch_rows)
        features = {f.name: _ARROW_BY_FEATURE[f.type] for f in spec.features}
        columns: list[Any] = list(zip(*first, strict=True)) if first else [[] for _ in names]
        fields = [
            pa.field(n, features[n]) if n in features else pa.field(n, pa.array(list(col)).type if first else pa.string())
            for n, col in zip(names, columns, strict=True)
        ]
        schema = pa.schema([f if not pa.types.is_null(f.type) else pa.field(f.name, pa.string()) for f in fields])

        def batches() -> Iterator[pa.RecordBatch]:
            rows = first
            while rows:
                cols = list(zip(*rows, strict=True))
                yield pa.RecordBatch.from_arrays([pa.array(list(c), type=f.type) for c, f in zip(cols, schema, strict=True)], schema=schema)
                rows = result.fetchmany(batch_rows)

        yield Stream(schema, _hash_filter(batches(), spec.key_columns, shard, shards), engine_path(url))
    finally:
        conn.close()
        eng.dispose()


# --------------------------------------------------------------------------------------------
# Parquet datasets
# --------------------------------------------------------------------------------------------
# Rows per batch read from a Parquet row group. make bench at 1,000,000 rows (row groups of 250,000 rows, 23
# features), the extract's peak memory and time from moto's S3: pyarrow's dataset scanner 508 MB, 1.60 s; one
# row group at a time in batches of 65,536 rows 442 MB, 1.55 s; of 16,384 rows 414 MB, 1.49 s. Reading pages
# as they are needed (pre_buffer off) saved another 40 MB but took 14 s: a ranged GET per page.
PARQUET_BATCH_ROWS = 16_384


def _row_groups(dataset: Any, pieces: list[Any], schema: pa.Schema, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """The rows of ``pieces`` (one row group each, of ``dataset``), one row group at a time, in batches of the
    contract's columns in its order; a column a hive folder name gives (``region=north/``) is added from the
    fragment's partition.

    A row group's column chunks are fetched together (``pre_buffer``: one coalesced read, a few GETs on S3) and
    decoded a batch at a time with nothing read ahead, so memory holds one row group's compressed chunks and one
    batch, whatever the day's size."""
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq

    filesystem = dataset.filesystem
    for piece in pieces:
        partition = pads.get_partition_keys(piece.partition_expression) or {}
        in_file = [c for c in schema.names if c not in partition]
        with filesystem.open_input_file(piece.path) as fh:
            pf = pq.ParquetFile(fh, pre_buffer=True)
            for rg in piece.row_groups:
                for batch in pf.iter_batches(batch_size=min(PARQUET_BATCH_ROWS, batch_rows), row_groups=[rg.id], columns=in_file):
                    if not batch.num_rows:
                        continue
                    n = batch.num_rows
                    arrays = [
                        batch.column(c) if c not in partition else pa.array([partition[c]] * n).cast(schema.field(c).type)
                        for c in schema.names
                    ]
                    yield pa.RecordBatch.from_arrays(arrays, schema=schema)


def parquet_location(settings: Settings, spec: JobSpec, ds: date) -> str:
    """The day's dataset: ``{ds}``/``{ds_nodash}``/``{artifacts}`` filled in, a relative folder from the spec's."""
    assert spec.source.parquet is not None
    text = spec.source.parquet.replace("{ds}", ds.isoformat()).replace("{ds_nodash}", ds.strftime("%Y%m%d"))
    text = text.replace("{artifacts}", settings.artifact_uri.rstrip("/"))
    if text.startswith("file://"):
        text = text.removeprefix("file://")
    if "://" not in text and not Path(text).is_absolute():
        text = str((spec.spec_dir / text).resolve())
    return text


def s3_filesystem(settings: Settings) -> Any:
    """pyarrow's S3 filesystem for the configured endpoint and credentials (the artifact store's)."""
    import os

    from pyarrow import fs

    kwargs: dict[str, Any] = {
        "region": settings.s3_region or os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1"
    }
    if settings.s3_endpoint_url:
        scheme, _, host = settings.s3_endpoint_url.partition("://")
        kwargs.update(endpoint_override=host.rstrip("/"), scheme=scheme)
    if settings.s3_access_key and settings.s3_secret_key:
        kwargs.update(access_key=settings.s3_access_key, secret_key=settings.s3_secret_key)
    kwargs["connect_timeout"] = 5
    kwargs["request_timeout"] = 30
    return fs.S3FileSystem(**kwargs)


@contextmanager
def _parquet(settings: Settings, spec: JobSpec, ds: date, shard: int, shards: int, batch_rows: int) -> Iterator[Stream]:
    import pyarrow.dataset as pads
    from pyarrow import fs

    location = parquet_location(settings, spec, ds)
    where = f"source.parquet {spec.source.parquet} ({location}) of {spec.spec_path}"
    if location.startswith("s3://"):
        filesystem, path = s3_filesystem(settings), location.removeprefix("s3://")
    else:
        filesystem, path = fs.LocalFileSystem(), location
    path = path.rstrip("/")
    try:
        info = filesystem.get_file_info(path)
    except Exception as exc:
        raise SourceError(
            f"the Parquet source of job {spec.name!r} cannot be reached: {first_line(exc)}",
            where=where,
            fix="check the S3 endpoint (AWS_ENDPOINT_URL) and credentials, or the folder's permissions",
        ) from None
    if info.type == fs.FileType.NotFound:
        raise SourceError(
            f"no Parquet data for {spec.name} {ds}: {location} does not exist",
            where=where,
            fix="check that the day's files have arrived (and the location's {ds} pattern), or score a day that has them",
        )
    try:
        dataset = pads.dataset(path, filesystem=filesystem, format="parquet", partitioning="hive", exclude_invalid_files=False)
        fragments = [piece for frag in dataset.get_fragments() for piece in frag.split_by_row_group()]
    except Exception as exc:
        raise SourceError(
            f"the Parquet source of job {spec.name!r} for {ds} cannot be read: {first_line(exc)}",
            where=where,
            fix="check that every file under the location is Parquet with the same columns",
        ) from None
    if not fragments:
        raise SourceError(
            f"no Parquet files for {spec.name} {ds} under {location}",
            where=where,
            fix="check that the day's files have arrived, or score a day that has them",
        )
    missing = [c for c in spec.columns if c not in dataset.schema.names]
    if missing:
        raise SourceError(
            f"the Parquet files for {spec.name} {ds} lack the contract's columns {', '.join(missing)}",
            where=where,
            fix="write those columns into the day's files (a hive partition folder like region=north/ counts), or correct the job's features",
        )
    mine = fragments[shard::shards]  # row groups i, i+n, ...: each row read by one shard only
    schema = pa.schema([dataset.schema.field(c) for c in spec.columns])

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            yield from _row_groups(dataset, mine, schema, batch_rows)
        except Exception as exc:
            raise SourceError(
                f"reading the Parquet source of job {spec.name!r} for {ds} failed: {first_line(exc)}",
                where=where,
                fix="check the day's files (a truncated or unreadable file) and the S3 endpoint, then rerun the day",
            ) from exc

    yield Stream(schema, batches(), "parquet")
