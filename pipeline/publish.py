"""Publish: bulk-load predictions into a new table (ADBC, COPY BINARY), then swap it in as the (job, ds)
partition of ``predictions`` in one short transaction.

``predictions`` is partitioned by RANGE over (job, ds), one partition per published day. Each shard of a
run loads its rows into the run's ``nightscore_staging.<table>`` (no lock on ``predictions``; the table
carries the partition's CHECK constraint from the start), each COPY checked against its file. Publishing
the day then adds the primary key there (a doubled row fails it), then, in one transaction: takes the (job, ds)
writers' row lock and the tables' locks with a short timeout (retried with backoff until a deadline),
detaches and drops the old partition of the day (if any), attaches the new table and marks the run
published. The DDL runs in SECURITY DEFINER functions (``sql/migrations/008``), so the writer role needs no
ownership of ``predictions``. Readers see the old day or the new day, never a mix or an empty day. A failure
anywhere leaves the published day as it was and drops the loaded table (on a fresh connection).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy.engine import Engine

from pipeline import db, failpoints
from pipeline.config import Settings
from pipeline.errors import NightscoreError, PublishTimeout
from pipeline.feed import FeedAborted
from pipeline.score import PREDICTION_SCHEMA
from pipeline.storage import stream_parquet

log = logging.getLogger(__name__)

STAGING_SCHEMA = "nightscore_staging"
PARTITIONS_SCHEMA = "nightscore_partitions"


@dataclass(frozen=True)
class Published:
    rows: int
    partition: str


def leaf_name(job: str, ds: date) -> str:
    """The partition table of one (job, ds): ``<job>__<yyyymmdd>`` (the job cut to 50 characters)."""
    return f"{job[:50]}__{ds:%Y%m%d}"


JSONB_VERSION = pa.scalar(b"\x01", pa.binary())  # jsonb's binary input: a version byte, then the JSON text


JSONB_COLUMNS = ("scores", "reasons")  # JSON text in the files, jsonb in the tables


def _wire(field: pa.Field) -> pa.Field:
    if field.name == "run_id":
        return pa.field("run_id", pa.binary(16), nullable=False)
    if field.name in JSONB_COLUMNS:
        return pa.field(field.name, pa.binary())
    return field


WIRE_SCHEMA = pa.schema([_wire(f) for f in PREDICTION_SCHEMA])


def _jsonb(col: pa.Array) -> pa.Array:
    import pyarrow.compute as pc

    return pc.binary_join_element_wise(JSONB_VERSION, pc.cast(col, pa.binary()), pa.scalar(b"", pa.binary()))


def wire_batch(batch: pa.RecordBatch) -> pa.RecordBatch:
    """A predictions (or reasons) batch as COPY BINARY wants it: run_id as 16 bytes (a uuid column), scores or
    reasons (JSON text) behind jsonb's version byte."""
    schema = pa.schema([_wire(f) for f in batch.schema])
    idx = batch.schema.get_field_index("run_id")
    js = [batch.schema.get_field_index(name) for name in JSONB_COLUMNS if name in batch.schema.names]
    run_ids = batch.column(idx).unique().to_pylist()
    if len(run_ids) == 1:  # one run per file: repeat its 16 bytes
        raw = np.frombuffer(uuid.UUID(run_ids[0]).bytes, dtype=np.uint8)
        col = pa.FixedSizeBinaryArray.from_buffers(pa.binary(16), batch.num_rows, [None, pa.py_buffer(np.tile(raw, batch.num_rows))])
    else:
        col = pa.array([uuid.UUID(r).bytes for r in batch.column(idx).to_pylist()], pa.binary(16))
    cols = [col if i == idx else c for i, c in enumerate(batch.columns)]
    for j in js:
        cols[j] = _jsonb(cols[j])
    return pa.RecordBatch.from_arrays(cols, schema=schema)


def _uuid_batches(path: Path, batch_rows: int, row_groups: list[int]) -> pa.RecordBatchReader:
    """Those row groups of a predictions (or reasons) file as COPY BINARY wants them (:func:`wire_batch`)."""
    pf = stream_parquet(path)
    schema = pa.schema([_wire(f) for f in pf.schema_arrow])
    return pa.RecordBatchReader.from_batches(schema, (wire_batch(b) for b in pf.iter_batches(batch_size=batch_rows, row_groups=row_groups)))


def load(settings: Settings, path: Path, table: str) -> int:
    """COPY the predictions file into ``nightscore_staging.<table>``: one ADBC stream per thread setting, each
    with a share of the file's row groups (two streams loaded 1M rows in 1.2 s against 2.8 s for one)."""
    from concurrent.futures import ThreadPoolExecutor

    groups = list(range(pq.ParquetFile(path).metadata.num_row_groups))
    streams = max(1, min(settings.threads, len(groups)))

    def one(share: list[int]) -> int:
        with db.adbc_connect(settings) as conn:
            with conn.cursor() as cur:
                n = cur.adbc_ingest(table, _uuid_batches(path, settings.batch_rows, share), mode="append", db_schema_name=STAGING_SCHEMA)
            conn.commit()
        return int(n) if n is not None and n >= 0 else -1

    shares = [groups[k::streams] for k in range(streams)]
    if streams == 1:
        counts = [one(shares[0])]
    else:
        with ThreadPoolExecutor(max_workers=streams, thread_name_prefix="nightscore-load") as pool:
            counts = list(pool.map(one, shares))
    return -1 if any(c < 0 for c in counts) else sum(counts)


class LoadStream:
    """COPY predictions batches into a loading table while they are being scored: ``streams`` ADBC
    connections, each ingesting (COPY BINARY) from one shared bounded queue, so that memory stays a few
    batches deep and a slow COPY holds the scoring back (backpressure). Each connection commits when the
    queue ends; :meth:`abort` (or any error) leaves nothing of this stream committed."""

    def __init__(self, settings: Settings, table: str, streams: int, depth: int = 4) -> None:
        import queue
        import threading

        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._failed = threading.Event()
        self._aborted = threading.Event()
        self.errors: list[BaseException] = []
        self.counts: list[int] = []
        self.rows_put = 0
        self.started = time.time()
        self.ended: float | None = None
        self._threads = [
            threading.Thread(target=self._run, args=(settings, table), name=f"nightscore-copy-{i}", daemon=True)
            for i in range(max(1, streams))
        ]
        for t in self._threads:
            t.start()

    def _run(self, settings: Settings, table: str) -> None:
        try:
            with db.adbc_connect(settings) as conn:
                with conn.cursor() as cur:
                    reader = pa.RecordBatchReader.from_batches(WIRE_SCHEMA, self._batches())
                    n = cur.adbc_ingest(table, reader, mode="append", db_schema_name=STAGING_SCHEMA)
                if self._aborted.is_set():  # never commit a stream that was called off
                    raise FeedAborted("the stream was aborted")
                conn.commit()
            self.counts.append(int(n) if n is not None and n >= 0 else -1)
        except BaseException as exc:  # noqa: BLE001  (kept, raised by put or close)
            self.errors.append(exc)
            self._failed.set()

    def _batches(self) -> Iterator[pa.RecordBatch]:
        import queue

        while True:
            if self._aborted.is_set():
                raise FeedAborted("the stream was aborted")
            try:
                item = self._queue.get(timeout=0.05)
            except queue.Empty:
                continue
            if item is None:
                return
            yield wire_batch(item)

    def put(self, batch: pa.RecordBatch) -> None:
        """Queue a predictions batch (PREDICTION_SCHEMA); waits while the queue is full; raises if a COPY failed."""
        import queue

        while True:
            if self._failed.is_set():
                raise self.errors[0]
            try:
                self._queue.put(batch, timeout=0.05)
                self.rows_put += batch.num_rows
                return
            except queue.Full:
                continue

    def close(self) -> int:
        """End every COPY, commit each, and return the rows loaded (their sum)."""
        import queue

        for _ in self._threads:
            while True:
                if self._failed.is_set():
                    break
                try:
                    self._queue.put(None, timeout=0.05)
                    break
                except queue.Full:
                    continue
        for t in self._threads:
            t.join()
        self.ended = time.time()
        if self.errors:
            raise self.errors[0]
        return -1 if any(c < 0 for c in self.counts) else sum(self.counts)

    def abort(self) -> None:
        """Stop every COPY without committing; never raises."""
        self._aborted.set()
        for t in self._threads:
            t.join(timeout=60)
        self.ended = time.time()


def clear_shard_rows(eng: Engine, name: str, shard: int, shards: int) -> int:
    """Delete what an earlier attempt of shard ``shard`` loaded into the loading table (and its side tables)."""
    with eng.begin() as conn:
        gone = conn.execute(db.query("clear_shard"), {"name": name, "shard": shard, "shards": shards}).scalar()
    if gone:
        log.info("shard %d: %d rows of an earlier attempt removed from %s", shard, gone, name)
    return int(gone or 0)


def create_loading_table(eng: Engine, name: str, job: str, ds: date, kind: str = "binary") -> None:
    """The run's loading table, shaped like predictions and carrying the day's CHECK and the model kind's range
    check on ``score`` (a probability in [0, 1], or any finite value for regression); its shards load into it."""
    with eng.begin() as conn:
        conn.execute(db.query("create_loading_table"), {"name": name, "job": job, "ds": ds, "kind": kind})


def create_side_table(eng: Engine, name: str, side: str, job: str, ds: date) -> None:
    """The run's side loading table ``<name>_reasons`` or ``<name>_shadow`` (sql/migrations/015): its shards
    load into it, and the day's swap publishes it with the predictions."""
    with eng.begin() as conn:
        conn.execute(db.query("create_side_table"), {"name": name, "side": side, "job": job, "ds": ds})


def load_side(settings: Settings, path: Path, name: str, side: str, shard: int) -> int:
    """COPY one shard's side file (reasons, shadow predictions) into the run's ``<name>_<side>`` table; a
    retried shard's earlier rows there were cleared with its predictions (:func:`load_shard`)."""
    expected = pq.ParquetFile(path).metadata.num_rows
    staged = load(settings, path, f"{name}_{side}")
    if staged >= 0 and staged != expected:
        raise NightscoreError(
            f"shard {shard} loaded {staged} {side} rows but its file has {expected}",
            where=f"{STAGING_SCHEMA}.{name}_{side}",
            fix="rerun the day; the published data was left as it was",
        )
    return expected


def load_shard(
    settings: Settings, eng: Engine, path: Path, name: str, shard: int, shards: int, *, clear: bool, by_keys: bool = False
) -> int:
    """COPY one shard's predictions into the run's loading table. With ``clear`` (an earlier attempt of the
    shard may have loaded rows) the shard's rows are deleted first: a retried shard replaces what it loaded
    before and nothing else. The shard's rows are those whose key hashes to it, or with ``by_keys`` (a Parquet
    source's shards are row groups) the keys in ``path``. Returns the rows loaded."""
    expected = pq.ParquetFile(path).metadata.num_rows
    if clear:
        with eng.begin() as conn:
            if by_keys:
                ids = pq.read_table(path, columns=["entity_id"]).column("entity_id").to_pylist()
                gone = conn.execute(db.query("clear_keys"), {"name": name, "keys": ids}).scalar()
            else:
                gone = conn.execute(db.query("clear_shard"), {"name": name, "shard": shard, "shards": shards}).scalar()
        if gone:
            log.info("shard %d: %d rows of an earlier attempt removed from %s", shard, gone, name)
    staged = load(settings, path, name)
    staged = staged if staged >= 0 else expected
    if staged != expected:
        raise NightscoreError(
            f"shard {shard} loaded {staged} rows but its predictions file has {expected}",
            where=f"{STAGING_SCHEMA}.{name}",
            fix="rerun the day; the published data was left as it was",
        )
    return staged


def publish_loaded(
    settings: Settings, job: str, ds: date, name: str, run_id: str, expected: int, *, max_reasons: int | None = None
) -> Published:
    """Make the loading table, which every shard has loaded (``expected`` rows, the shards' sum), the published
    (job, ds) partition: add the primary key, and swap it in atomically, marking the run published in the
    same commit. Raises :class:`PublishTimeout` if other sessions hold the day's locks
    past the deadline. Any failure leaves the published day as it was and drops the loading table."""
    leaf = leaf_name(job, ds)
    params = {"name": name, "job": job, "ds": ds.isoformat(), "run_id": run_id, "leaf": leaf}
    eng = db.ready_engine(settings)
    clock = [time.perf_counter()]
    try:
        failpoints.reached("index")
        with eng.begin() as conn:
            if max_reasons is not None:  # explain.max_rows: the reasons of the day's highest scores only
                conn.execute(db.query("trim_reasons"), {"name": name, "max": max_reasons})
            conn.execute(db.query("seal_loading_table"), params)
        clock.append(time.perf_counter())
        _swap(settings, eng, {**params, "rows": expected})
        clock.append(time.perf_counter())
        t_seal, t_swap = (b - a for a, b in zip(clock, clock[1:], strict=False))
        log.info("published %s %s (%d rows): index %.2f s, swap %.2f s", job, ds, expected, t_seal, t_swap)
    except BaseException as exc:
        drop_loading_table(eng, name)
        if (
            isinstance(exc, Exception) and not isinstance(exc, NightscoreError) and "could not create unique index" in str(exc)
        ):  # duplicate key
            raise NightscoreError(
                f"publish of {job} {ds}: the predictions repeat an entity id",
                where=f"{STAGING_SCHEMA}.{name}",
                fix="the job's validation should refuse duplicate keys; check the entity_key in the job spec",
            ) from exc
        raise
    return Published(rows=expected, partition=f"{PARTITIONS_SCHEMA}.{leaf}")


def loading_table_name(run_id: str) -> str:
    """``load_<first 12 hex digits of the run id>_<12 random hex digits>``: the run that loads it is in the name
    (each run creates one, when it begins; a retried publish of the same run finds it by its row)."""
    return f"load_{run_id.replace('-', '')[:12]}_{uuid.uuid4().hex[:12]}"


def drop_loading_table(eng: Engine, name: str) -> None:
    """Drop a loading table on a connection of its own (the failed one may be dead), never raising: what
    cannot be dropped now is found by the next run's sweep (:mod:`pipeline.reap`)."""
    try:
        with eng.begin() as conn:
            conn.exec_driver_sql(db.query_text("set_lock_timeout"), {"timeout": "5s"})
            conn.execute(db.query("drop_loading_table"), {"name": name})
    except Exception as exc:
        log.info("could not drop %s.%s (%s); the next run's sweep will", STAGING_SCHEMA, name, str(exc).strip().splitlines()[0])


def _swap(settings: Settings, eng: Engine, params: dict[str, Any]) -> bool:
    """Take the day's locks and swap the loaded table in, each try within ``publish_lock_timeout_ms``.

    While the swap waits for a lock, and while it runs, every new query on ``predictions`` queues behind it; so
    one try never holds them up longer than the timeout: the wait for the locks gets three quarters of it and
    the swap the rest. After a try that ran out, it lets the queue through, names the sessions in its way,
    backs off and tries again until ``publish_deadline_s``. Returns whether an older copy of the day was replaced."""
    from psycopg2 import errors as pgerrors

    timeout_ms = settings.publish_lock_timeout_ms
    lock_ms = max(1, timeout_ms * 3 // 4)
    deadline = time.monotonic() + settings.publish_deadline_s
    pause, tries = 0.2, 0
    while True:
        tries += 1
        raw = eng.raw_connection()
        try:
            with closing(raw.cursor()) as cur:
                cur.execute(db.query_text("set_lock_timeout"), {"timeout": lock_ms})
                cur.execute(db.query_text("set_statement_timeout"), {"timeout": lock_ms})  # all the locks in one bound
                began, stage = time.monotonic(), "locks"
                try:
                    cur.execute(db.query_text("lock_partition"), params)
                    stage = "swap"
                    left_ms = max(1, timeout_ms - int((time.monotonic() - began) * 1000))
                    cur.execute(db.query_text("set_statement_timeout"), {"timeout": left_ms})
                    cur.execute(db.query_text("publish_swap"), params)
                except (pgerrors.LockNotAvailable, pgerrors.QueryCanceled):
                    raw.rollback()
                    in_the_way = publish_blockers(eng, params["leaf"]) or "sessions that have since finished"
                    waited = settings.publish_deadline_s - (deadline - time.monotonic())
                    if time.monotonic() + pause > deadline:
                        raise PublishTimeout(
                            f"publish of {params['job']} {params['ds']} could not take its locks within {settings.publish_deadline_s} s "
                            f"({tries} tries of {timeout_ms} ms); in the way: {in_the_way}",
                            where="predictions",
                            fix="end or shorten those transactions (set idle_in_transaction_session_timeout on application roles, "
                            "docs/database.md: Roles), or raise NIGHTSCORE_PUBLISH_DEADLINE_SECONDS; then rerun the day. "
                            "The published day was left as it was",
                        ) from None
                    log.warning(
                        "publish of %s %s: %s within %d ms (try %d, %.1f s so far); waiting for %s",
                        params["job"],
                        params["ds"],
                        "locks not free" if stage == "locks" else "locks taken but the swap not done",
                        timeout_ms,
                        tries,
                        waited,
                        in_the_way,
                    )
                    time.sleep(pause)
                    pause = min(pause * 2, 10.0)
                    continue
                row = cur.fetchone()
                failpoints.reached("swap")
            raw.commit()
            return bool(row and row[0])
        except BaseException:
            try:
                raw.rollback()
            except Exception:  # a dead connection: the server rolls the transaction back itself
                raw.invalidate()  # and the pool must not try to reset it
            raise
        finally:
            raw.close()


def publish_blockers(eng: Engine, leaf: str) -> str:
    """The sessions holding the day's locks, as one line: pid, user, state, transaction age."""
    try:
        with eng.connect() as conn:
            rows = conn.execute(db.query("publish_blockers"), {"leaf": leaf}).all()
    except Exception as exc:
        return f"(could not list them: {str(exc).strip().splitlines()[0]})"
    return "; ".join(
        f"pid {r.pid} (user {r.usename}, {r.state or 'state hidden'}"
        + (f", transaction open {r.xact_seconds} s" if r.xact_seconds is not None else "")
        + (f", application {r.application_name!r}" if r.application_name else "")
        + ")"
        for r in rows
    )
