"""Sources and keys without a server: the spec's source forms, keys of several columns (their text key, its
split, validation and the quarantine by key), connection URLs from the environment, SQLite through its ADBC
driver and through SQLAlchemy, and Parquet folders (hive partitions, only the contract's columns, row-group
shards that read each row once, a missing day or column refused up front)."""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from pipeline import keys
from pipeline.config import PROJECT_ROOT, connection_url, load_settings
from pipeline.demo import generate_day
from pipeline.errors import JobSpecError, SourceError
from pipeline.jobs import load_spec, render_binds
from pipeline.sources import engine_path, open_source, read_query
from pipeline.validate import validate_frame

pytestmark = pytest.mark.unit

JOBS = PROJECT_ROOT / "dags" / "jobs"
DAY = date(2026, 3, 2)


def _spec(tmp_path: Path, **changes):
    raw = yaml.safe_load((JOBS / "churn.yml").read_text())
    raw.update(changes)
    for name in ("churn.sql", "churn_train.sql", "churn_outcomes.sql"):
        (tmp_path / name).write_text((JOBS / name).read_text())
    path = tmp_path / "churn.yml"
    path.write_text(yaml.safe_dump(raw))
    return load_spec(path)


def _settings(tmp_path: Path, **env: str):
    return load_settings({"NIGHTSCORE_HOME": str(tmp_path / "home"), **env})


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"sql": "churn.sql", "parquet": "x/ds={ds}/"}, "either a query"),
        ({}, "either a query"),
        ({"parquet": "s3://b/features/"}, r"has no \{ds\}"),
        ({"parquet": "s3://b/{day}/{ds}/"}, r"unknown placeholder \{day\}"),
        ({"parquet": "x/ds={ds}/", "connection": "wh"}, "connection is for queries"),
        ({"sql": "churn.sql", "connection": "bad name"}, "source.connection"),
    ],
)
def test_a_source_is_a_query_or_a_parquet_dataset(tmp_path, source, message):
    with pytest.raises(JobSpecError, match=message):
        _spec(tmp_path, source=source)


def test_entity_key_of_several_columns(tmp_path):
    spec = _spec(tmp_path, entity_key=["store_id", "customer_id"])
    assert spec.key_columns == ["store_id", "customer_id"] and spec.columns[:3] == ["store_id", "customer_id", "tenure_months"]
    assert _spec(tmp_path, entity_key=["customer_id"]).entity_key == "customer_id"  # a list of one is the column
    for bad, message in ((["a", "a"], "twice"), ([], "no column"), (["plan", "x"], "cannot also be a feature"), (["Bad"], "lowercase")):
        with pytest.raises(JobSpecError, match=message):
            _spec(tmp_path, entity_key=bad)
    with pytest.raises(JobSpecError, match="cannot be named 'latest'"):
        _spec(tmp_path, name="latest")


def test_text_key_joins_escapes_and_splits_back():
    batch = pa.record_batch({"store": pa.array([3, 3, None], pa.int32()), "sku": ["A-1", "x|y%z", "q"], "day": pa.array([DAY] * 3)})
    ids = keys.entity_ids(batch, ["store", "sku", "day"]).to_pylist()
    assert ids == ["3|A-1|2026-03-02", "3|x%7Cy%25z|2026-03-02", None]
    assert keys.split_key(ids[1], ["store", "sku", "day"]) == {"store": "3", "sku": "x|y%z", "day": "2026-03-02"}
    assert keys.describe_key(ids[0], ["store", "sku", "day"]) == "store=3, sku=A-1, day=2026-03-02"
    assert keys.entity_ids(batch, ["store"]).to_pylist() == ["3", "3", None]  # one column: its text
    assert keys.key_sql(["store", "sku"], "t") == (
        "concat_ws('|', replace(replace(CAST(t.\"store\" AS text), '%', '%25'), '|', '%7C'), "
        "replace(replace(CAST(t.\"sku\" AS text), '%', '%25'), '|', '%7C'))"
    )
    assert [c["type"] for c in keys.key_types(batch.schema, ["store", "sku", "day"])] == ["integer", "text", "date"]
    with pytest.raises(SourceError, match=r"'price' is double.*integers, text, dates or booleans"):
        keys.check_key_types(pa.schema([("price", pa.float64())]), ["price"], where="here")


def test_a_repeated_key_of_several_columns_is_quarantined_by_its_columns(tmp_path):
    spec = _spec(tmp_path, entity_key=["store_id", "customer_id"], validation={"policy": "quarantine", "max_bad_ratio": 0.5})
    df = generate_day(DAY, 50).to_pandas().drop(columns=["ds"])
    df.insert(0, "store_id", (df["customer_id"] % 5).astype("int32"))
    df = pd.concat([df, df.iloc[[7]]], ignore_index=True)  # one key twice
    df.loc[3, "customer_id"] = df.loc[9, "customer_id"]  # customer 10 in stores 4 and 0: two keys, not a repeat
    assert df.loc[3, "store_id"] != df.loc[9, "store_id"]
    cols = ["store_id", *spec.columns[1:]]
    out = validate_frame(spec, df[cols])
    assert out.passed and sorted(out.quarantined) == [f"{df.loc[7, 'store_id']}|{df.loc[7, 'customer_id']}"], out.quarantined
    assert f"e.g. keys (store_id={df.loc[7, 'store_id']}, customer_id={df.loc[7, 'customer_id']})" in out.message


def test_connection_url_from_the_variable_or_its_file(tmp_path):
    assert connection_url("warehouse", {"NIGHTSCORE_CONN_WAREHOUSE": "postgresql://a@h/db"}) == "postgresql://a@h/db"
    secret = tmp_path / "url"
    secret.write_text("sqlite:////data/x.db\n")
    assert connection_url("Lake", {"NIGHTSCORE_CONN_LAKE_FILE": str(secret)}) == "sqlite:////data/x.db"
    assert connection_url("none", {}) is None
    assert engine_path("postgresql://u@h/db") == engine_path("postgresql+psycopg2://u@h/db") == "adbc postgresql"
    assert engine_path("sqlite:///x.db") == "adbc sqlite" and engine_path("snowflake://a/b") == "adbc snowflake"
    assert engine_path("mysql+pymysql://u@h/db") == "sqlalchemy mysql" and engine_path("sqlite+pysqlite:///x.db") == "sqlalchemy sqlite"
    assert render_binds("WHERE ds = :ds", ds=DAY, plain=True) == "WHERE ds = '2026-03-02'"


def _sqlite_source(tmp_path: Path) -> Path:
    path = tmp_path / "warehouse.db"
    with sqlite3.connect(path) as conn:
        df = generate_day(DAY, 200).to_pandas()
        df["ds"] = df["ds"].astype(str)
        df.to_sql("customer_activity", conn, index=False)
    (tmp_path / "lite.sql").write_text(
        "SELECT customer_id, tenure_months, monthly_spend, sessions_30d, support_tickets_90d, days_since_last_login,\n"
        "       avg_session_minutes, discount_pct, plan, region, payment_method\n"
        "FROM customer_activity WHERE ds = :ds"
    )
    return path


@pytest.mark.parametrize("scheme", ["sqlite", "sqlite+pysqlite"])
def test_sqlite_source_through_adbc_and_through_sqlalchemy(tmp_path, scheme):
    db_file = _sqlite_source(tmp_path)
    spec = _spec(tmp_path, source={"connection": "lite", "sql": "lite.sql"}, shards=2)
    settings = _settings(tmp_path, NIGHTSCORE_CONN_LITE=f"{scheme}:///{db_file}")
    expected = generate_day(DAY, 200).select(spec.columns)
    got, paths = [], set()
    for shard in range(2):  # the shards' rows: each row once, by the key's hash
        with open_source(settings, spec, DAY, shard=shard, shards=2, batch_rows=64) as stream:
            paths.add(stream.path)
            got.append(pa.Table.from_batches(list(stream.batches), schema=stream.schema))
    table = pa.concat_tables(got).sort_by("customer_id")
    assert paths == {"adbc sqlite" if scheme == "sqlite" else "sqlalchemy sqlite"}
    assert 0 < got[0].num_rows < 200 and table.num_rows == 200
    assert table.column("customer_id").to_pylist() == expected.column("customer_id").to_pylist()
    assert table.column("monthly_spend").to_pylist() == pytest.approx(expected.column("monthly_spend").to_pylist())
    # the other queries go to the same connection
    (tmp_path / "count.sql").write_text("SELECT count(*) AS n FROM customer_activity WHERE ds >= :start AND ds < :end")
    assert read_query(settings, spec, "count.sql", "count", start=DAY, end=date(2026, 3, 3)).column("n").to_pylist() == [200]


def test_sqlite_source_errors_name_the_fix_and_hide_the_password(tmp_path):
    spec = _spec(tmp_path, source={"connection": "wh", "sql": "churn.sql"})
    with pytest.raises(SourceError, match="connection 'wh' is not configured") as err:
        with open_source(_settings(tmp_path), spec, DAY):
            pass
    assert "NIGHTSCORE_CONN_WH" in str(err.value)
    settings = _settings(tmp_path, NIGHTSCORE_CONN_WH="postgresql://nightscore:Sup3rSecret@127.0.0.1:9/wh")
    with pytest.raises(SourceError, match="cannot connect to the source database") as err:
        with open_source(settings, spec, DAY):
            pass
    assert "Sup3rSecret" not in str(err.value) and "***" in str(err.value)


def _lake(root: Path, days: list[date], customers: int = 300, groups: int = 3) -> None:
    for day in days:
        table = generate_day(day, customers).drop_columns(["ds"])
        for region in ("north", "south"):  # hive partitions below the day: region=... comes from the folder
            part = table.filter(pa.compute.equal(table.column("region"), region)).drop_columns(["region"])
            folder = root / f"ds={day}" / f"region={region}"
            folder.mkdir(parents=True)
            pq.write_table(part, folder / "part-0.parquet", row_group_size=max(1, part.num_rows // groups))


def test_parquet_folder_hive_partitions_and_row_group_shards(tmp_path):
    _lake(tmp_path / "lake", [DAY])
    spec = _spec(tmp_path, source={"parquet": "lake/ds={ds}/"}, shards=3)
    settings = _settings(tmp_path)
    tables = []
    for shard in range(3):
        with open_source(settings, spec, DAY, shard=shard, shards=3, batch_rows=50) as stream:
            assert stream.schema.names == spec.columns  # only the contract's columns, in its order
            tables.append(pa.Table.from_batches(list(stream.batches), schema=stream.schema))
    whole = pa.concat_tables(tables)
    expected = generate_day(DAY, 300)
    expected = expected.filter(pa.compute.is_in(expected.column("region"), pa.array(["north", "south"])))
    assert all(t.num_rows for t in tables) and whole.num_rows == expected.num_rows  # every row once, no row twice
    assert sorted(whole.column("customer_id").to_pylist()) == sorted(expected.column("customer_id").to_pylist())
    assert set(whole.column("region").to_pylist()) == {"north", "south"}


def test_parquet_missing_day_or_column_is_refused_up_front(tmp_path):
    _lake(tmp_path / "lake", [DAY])
    settings = _settings(tmp_path)
    spec = _spec(tmp_path, source={"parquet": "lake/ds={ds}/"})
    with pytest.raises(SourceError, match=r"no Parquet data for churn 2026-03-03: .*ds=2026-03-03 does not exist") as err:
        with open_source(settings, spec, date(2026, 3, 3)):
            pass
    assert "have arrived" in str(err.value)
    features = yaml.safe_load((JOBS / "churn.yml").read_text())["features"] + [{"name": "loyalty_points", "type": "int"}]
    spec = _spec(tmp_path, source={"parquet": "lake/ds={ds}/"}, features=features)
    with pytest.raises(SourceError, match="lack the contract's columns loyalty_points"):
        with open_source(settings, spec, DAY):
            pass
