"""Extract: one (job, ds) partition from the job's source (:mod:`pipeline.sources`) into ``features.parquet``, streamed as Arrow batches."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import keys
from pipeline.config import Settings
from pipeline.errors import NightscoreError, SourceError
from pipeline.feed import BatchFeed, FanOut
from pipeline.jobs import JobSpec
from pipeline.storage import ArtifactStore


@dataclass(frozen=True)
class Extracted:
    uri: str
    rows: int
    sha256: str  # content hash of the snapshot file
    schema: pa.Schema | None = None  # what the source returned (the key's types for the job's view)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def extract(
    settings: Settings,
    spec: JobSpec,
    ds: date,
    store: ArtifactStore,
    prefix: str,
    workdir: Path,
    *,
    shard: int = 0,
    shards: int = 1,
    feed: BatchFeed | FanOut | None = None,
) -> Extracted:
    """Read the job's source for ``ds`` (shard ``shard`` of ``shards``; :mod:`pipeline.sources`) and store
    the rows as ``<prefix>/features.parquet``, one batch in memory at a time.

    With ``feed``, the schema and then each batch written are handed to it as well (the one-pass run
    validates them on another thread while the source is still being read)."""
    from pipeline.sources import open_source

    out = workdir / "features.parquet"
    rows = 0
    schema = None
    where = spec.source_where()
    try:
        with open_source(settings, spec, ds, shard=shard, shards=shards) as stream:
            schema = stream.schema
            keys.check_key_types(schema, spec.key_columns, where=where)
            # lz4: the snapshot is read back at once by validate and score; zstd saved 6% of the size here
            # but took 4x longer to read. Dictionary pages only for strings: on continuous numbers they are
            # built and thrown away, which tripled the write time (measured by make bench).
            strings = [f.name for f in stream.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
            if feed is not None:
                feed.open(stream.schema)
            with pq.ParquetWriter(out, stream.schema, compression="lz4", use_dictionary=strings) as writer:
                for batch in stream.batches:
                    writer.write_batch(batch)
                    rows += batch.num_rows
                    if feed is not None:
                        feed.put(batch)
    except Exception as exc:
        if isinstance(exc, SourceError):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SourceError(
            f"the source query of job {spec.name!r} for {ds} failed: {first}",
            where=where,
            fix="run the query by hand (psql) to see the full error, then correct the query or the source table",
        ) from exc
    digest = file_sha256(out)
    uri = store.put_file(f"{prefix}/features.parquet", out, move=True)
    return Extracted(uri=uri, rows=rows, sha256=digest, schema=schema)


def no_rows_error(settings: Settings, spec: JobSpec, ds: date, shards: int = 1, window: int = 14) -> NightscoreError:
    """The error for a day the source has no rows for: the day, whether it is still in progress in the job's
    timezone, and the nearest days within ``window`` days that do have rows (one cheap query per day tried)."""
    from datetime import UTC, datetime, timedelta

    from pipeline.errors import ValidationFailed
    from pipeline.schedule import latest_complete_day
    from pipeline.sources import has_rows

    complete = latest_complete_day(datetime.now(UTC), spec.timezone)
    found: dict[str, date | None] = {"before": None, "after": None}
    try:
        for side, step in (("before", -1), ("after", 1)):
            for k in range(1, window + 1):
                day = ds + timedelta(days=step * k)
                if day > complete and step > 0:
                    break
                if has_rows(settings, spec, day):  # the day's first row, whatever the source (LIMIT 1 on a query)
                    found[side] = day
                    break
    except Exception:  # the hint is a courtesy; the error stands without it
        pass

    def near(side: str) -> str:
        return f"{found[side]} {side}" if found[side] else f"none in the {window} days {side}"

    state = (
        f"the day is still in progress in {spec.timezone} (the latest complete day is {complete})" if ds > complete else "a complete day"
    )
    over = f" over its {shards} shards" if shards > 1 else ""
    suggestion = found["before"] or (found["after"] if found["after"] and found["after"] <= complete else None)
    return ValidationFailed(
        f"the source has no rows for {spec.name} {ds}{over} ({state}); the nearest days with rows: {near('before')}, {near('after')}",
        where=spec.source_where(),
        fix=(f"score a day that has data (--ds {suggestion}), or " if suggestion else "")
        + "check that the day's data has arrived in the source; nothing was published and the previous data is untouched",
    )
