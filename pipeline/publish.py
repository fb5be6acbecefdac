"""Publish: bulk-load predictions into a staging table (ADBC, COPY BINARY), then swap the (job, ds)
partition of ``predictions`` in one transaction.

Readers see the old day or the new day, never a mix or an empty day: the delete and the insert
commit together. Two writers of the same (job, ds) queue on a transaction-scoped advisory lock.
A failure anywhere leaves the published day as it was.
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from psycopg2 import sql as pgsql

from pipeline import db
from pipeline.config import SQL_DIR, Settings
from pipeline.errors import NightscoreError

STAGING_SCHEMA = "nightscore_staging"


@dataclass(frozen=True)
class Published:
    rows: int
    staging_table: str


def stage(settings: Settings, predictions_path: Path, table: str) -> int:
    """Bulk-load the predictions file into ``nightscore_staging.<table>``, streaming its batches."""
    pf = pq.ParquetFile(predictions_path)
    stream = pa.RecordBatchReader.from_batches(pf.schema_arrow, pf.iter_batches(batch_size=settings.batch_rows))
    with db.adbc_connect(settings) as conn:
        with conn.cursor() as cur:
            rows = cur.adbc_ingest(table, stream, mode="create", db_schema_name=STAGING_SCHEMA)
        conn.commit()
    return int(rows) if rows is not None and rows >= 0 else pf.metadata.num_rows


def publish(settings: Settings, job: str, ds: date, predictions_path: Path, run_id: str) -> Published:
    """Make the predictions file the published (job, ds) partition, atomically."""
    table = f"stg_{run_id.replace('-', '')}"
    expected = pq.ParquetFile(predictions_path).metadata.num_rows
    eng = db.ready_engine(settings)
    staged = stage(settings, predictions_path, table)
    swap = pgsql.SQL((SQL_DIR / "queries" / "publish_partition.sql").read_text()).format(staging=pgsql.Identifier(STAGING_SCHEMA, table))
    drop = pgsql.SQL("DROP TABLE IF EXISTS {}").format(pgsql.Identifier(STAGING_SCHEMA, table))
    raw = eng.raw_connection()
    try:
        with closing(raw.cursor()) as cur:
            cur.execute(swap, {"job": job, "ds": ds.isoformat()})
            inserted = cur.rowcount
            if inserted != expected or staged != expected:
                raise NightscoreError(
                    f"publish of {job} {ds} staged {staged} and inserted {inserted} rows but the predictions file has {expected}",
                    where=f"{STAGING_SCHEMA}.{table}",
                    fix="rerun the day; the published data was left as it was",
                )
            cur.execute(drop)
        raw.commit()
    except BaseException:
        raw.rollback()
        with closing(raw.cursor()) as cur:
            cur.execute(drop)
        raw.commit()
        raise
    finally:
        raw.close()
    return Published(rows=inserted, staging_table=table)
