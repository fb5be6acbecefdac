"""Synthetic but realistic customer-activity data for the three demo jobs, one table for all of them.

``demo.customer_activity`` holds a day's features of every customer and three outcomes, one per demo job:

- ``churned`` (``churn``, binary): the customer cancels within 30 days;
- ``basket_value`` (``basket_value``, regression): what the customer spends in the next 30 days, the
  subscription and in-app purchases together: positive and right-skewed (lognormal around a mean that
  follows spend, engagement and region; a customer who cancels spends about a quarter of it);
- ``next_plan`` (``plan_choice``, multiclass): the plan chosen at renewal, ``basic``, ``standard``,
  ``premium`` or ``cancel`` (every churned customer cancels; the others mostly keep their plan, and move up
  with engagement and spend, down with support tickets).

Deterministic: a day's rows depend only on the day and the customer count, never on when or how
often the generator runs. Every outcome really depends on the features, so a model can learn it. The two
later outcomes draw from noise of their own, so the churn columns are exactly what they were before them.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

from pipeline import db
from pipeline.config import Settings

DEMO_TABLE = "customer_activity"
DEMO_SCHEMA = "demo"
PLANS = np.array(["basic", "standard", "premium"])
REGIONS = np.array(["north", "south", "east", "west"])
PAYMENTS = np.array(["card", "paypal", "invoice"])
NEXT_PLANS = np.array(["basic", "standard", "premium", "cancel"])  # plan_choice's classes, in its model's order


def generate_day(ds: date, customers: int = 20_000) -> pa.Table:
    """One day of activity for ``customers`` customers (ids 1..N), with the three demo jobs' outcomes."""
    base = np.random.default_rng(20240601)  # customers' stable traits
    tenure0 = base.gamma(2.0, 14.0, customers)
    spend_base = base.lognormal(3.6, 0.5, customers)
    plan_idx = base.choice(3, customers, p=[0.5, 0.35, 0.15])
    region_idx = base.choice(4, customers)
    pay_idx = base.choice(3, customers, p=[0.6, 0.25, 0.15])
    engagement = base.normal(0.0, 1.0, customers)

    rng = np.random.default_rng(ds.toordinal())  # the day's noise
    n = customers
    day_offset = (ds - date(2024, 1, 1)).days / 30.0
    tenure = np.clip(np.floor(tenure0 + day_offset), 0, 600).astype(np.int64)
    spend = np.round(spend_base * (1 + 0.4 * plan_idx) * rng.normal(1.0, 0.05, n), 2).clip(0, 10_000)
    sessions = rng.poisson(np.exp(2.5 + 0.6 * engagement)).clip(0, 10_000).astype(np.int64)
    tickets = rng.poisson(np.exp(-0.5 - 0.4 * engagement + 0.3 * (pay_idx == 2))).astype(np.int64)
    last_login = np.round(rng.exponential(np.exp(1.2 - 0.8 * engagement)), 1).clip(0, 3650)
    minutes = np.round(rng.gamma(2.0, 6.0 + 2.0 * engagement.clip(-2, 2) + 4.0, n), 1).clip(0, 1440)
    discount = np.round(rng.choice([0, 0, 0, 5, 10, 20], n) + 0.0, 1)

    logit = (
        -1.3
        - 0.035 * tenure
        + 0.55 * tickets
        + 0.06 * last_login
        - 0.04 * sessions
        - 0.35 * plan_idx
        + 0.6 * (pay_idx == 2)
        - 0.04 * discount
        + 0.3 * (region_idx == 1)
        + rng.normal(0, 0.4, n)
    )
    churned = rng.random(n) < 1 / (1 + np.exp(-logit))

    basket_value, next_plan = _renewal(ds, spend, sessions, tickets, minutes, discount, tenure, plan_idx, region_idx, churned)

    login_null = rng.random(n) < 0.03
    minutes_null = rng.random(n) < 0.02
    pay_null = rng.random(n) < 0.01
    return pa.table(
        {
            "ds": pa.array([ds] * n, pa.date32()),
            "customer_id": pa.array(np.arange(1, n + 1, dtype=np.int64)),
            "tenure_months": pa.array(tenure),
            "monthly_spend": pa.array(spend),
            "sessions_30d": pa.array(sessions),
            "support_tickets_90d": pa.array(tickets),
            "days_since_last_login": pa.array(last_login, mask=login_null),
            "avg_session_minutes": pa.array(minutes, mask=minutes_null),
            "discount_pct": pa.array(discount),
            "plan": pa.array(PLANS[plan_idx]),
            "region": pa.array(REGIONS[region_idx]),
            "payment_method": pa.array(PAYMENTS[pay_idx], mask=pay_null),
            "churned": pa.array(churned),
            "basket_value": pa.array(basket_value),
            "next_plan": pa.array(NEXT_PLANS[next_plan]),
        }
    )


def _renewal(
    ds: date,
    spend: np.ndarray,
    sessions: np.ndarray,
    tickets: np.ndarray,
    minutes: np.ndarray,
    discount: np.ndarray,
    tenure: np.ndarray,
    plan_idx: np.ndarray,
    region_idx: np.ndarray,
    churned: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The next 30 days' spend and the plan chosen at renewal (an index into :data:`NEXT_PLANS`), from the
    day's features and churn outcome, with noise of their own (``generate_day``'s own stream is untouched)."""
    n = len(spend)
    rng = np.random.default_rng([ds.toordinal(), 1])
    # spend: the subscription and in-app purchases; lognormal noise around a mean the features set
    log_mean = (
        np.log(spend)
        - 0.6
        + 0.3 * np.log1p(sessions)
        + 0.012 * minutes
        + 0.2 * (region_idx == 0)
        - 0.015 * discount
        + 0.003 * np.minimum(tenure, 120)
        - 1.3 * churned
    )
    basket_value = np.round(np.exp(log_mean + rng.normal(0.0, 0.45, n)), 2).clip(0.01, 100_000)
    # the plan at renewal: a multinomial logit over basic, standard, premium (Gumbel noise, the best utility
    # wins), sticky to the current plan; a churned customer cancels
    upgrade = (
        0.06 * (sessions - 14)
        + 0.03 * (minutes - 20)
        + 1.2 * np.log(spend / (50.0 * (1 + 0.4 * plan_idx)))
        - 0.4 * tickets
        + 0.04 * discount
    )
    utility = np.stack([np.zeros(n), 0.9 * upgrade, -0.8 + 1.8 * upgrade], axis=1) + 1.5 * np.eye(3)[plan_idx]
    chosen = (utility + rng.gumbel(size=(n, 3))).argmax(axis=1)
    return basket_value, np.where(churned, 3, chosen)


PARQUET_PREFIX = "demo/customer_activity"  # under the artifact store: the plan_choice job's Parquet source


def parquet_day_uri(settings: Settings, ds: date) -> str:
    """Where the demo's Parquet export of a day lies: ``{artifacts}/demo/customer_activity/ds=<day>/part-0.parquet``."""
    return f"{settings.artifact_uri.rstrip('/')}/{PARQUET_PREFIX}/ds={ds.isoformat()}/part-0.parquet"


def export_parquet(settings: Settings, start: date, end: date, customers: int = 20_000, *, rewrite: tuple[date, ...] = ()) -> int:
    """The days ``start``..``end`` of the demo data as Parquet files in the artifact store (a folder, or S3 as
    configured), one hive partition folder per day, as a data lake would hold them: the source of the
    ``plan_choice`` job. Days already there are kept unless in ``rewrite``. Returns the days written."""
    import pyarrow.parquet as pq
    from pyarrow import fs

    from pipeline.sources import s3_filesystem

    written = 0
    for i in range((end - start).days + 1):
        ds = start + timedelta(days=i)
        uri = parquet_day_uri(settings, ds)
        filesystem, path = (s3_filesystem(settings), uri.removeprefix("s3://")) if uri.startswith("s3://") else (fs.LocalFileSystem(), uri)
        if ds not in rewrite and filesystem.get_file_info(path).type == fs.FileType.File:
            continue
        if not uri.startswith("s3://"):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # several row groups a day, as a writer of a lake would leave them: a sharded run splits by row group
        table = generate_day(ds, customers)
        table = table.drop_columns(["ds"]) if "ds" in table.column_names else table  # the day is the folder's ds=
        pq.write_table(table, path, filesystem=filesystem, row_group_size=max(1, customers // 4))
        written += 1
    return written


def load_demo_data(settings: Settings, start: date, end: date, customers: int = 20_000, *, parquet: bool = True) -> dict[str, int]:
    """Make sure ``demo.customer_activity`` holds days ``start``..``end`` (inclusive).

    Days already present with the expected row count and every outcome are kept; others are (re)written:
    days present with another row count (another ``customers``, or half-written) are replaced, and so are
    days written before the ``basket_value`` and ``next_plan`` columns existed (their rows lack them; the
    rewritten rows have the same churn columns as before, the generator being deterministic).
    With ``parquet``, the days are also exported as Parquet files into the artifact store
    (:func:`export_parquet`: the ``plan_choice`` job reads them from there).
    Returns ``{"days_written": .., "days_replaced": .. (of those written: another row count),
    "days_completed": .. (of those written: the later outcomes were missing), "days_kept": .., "rows": ..,
    "parquet_days": .. (Parquet files written)}``.
    """
    eng = db.ready_engine(settings)
    with eng.begin() as conn:
        db.run_script(conn, db.query("create_demo_source").text)
        have = {r.ds: (r.n, r.incomplete) for r in conn.execute(db.query("count_demo_days"), {"a": start, "b": end})}
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    todo = [d for d in days if d not in have or have[d] != (customers, 0)]
    if todo:
        with eng.begin() as conn:  # a half-written day is rewritten next time: its count is off
            conn.execute(db.query("delete_demo_days"), {"days": todo})
        with db.adbc_connect(settings) as conn:
            with conn.cursor() as cur:
                for d in todo:
                    cur.adbc_ingest(DEMO_TABLE, generate_day(d, customers), mode="append", db_schema_name=DEMO_SCHEMA)
            conn.commit()
    replaced = sum(1 for d in todo if d in have and have[d][0] != customers)  # another customer count (or half-written)
    completed = sum(1 for d in todo if d in have and have[d][0] == customers)  # right count, later outcomes missing
    exported = export_parquet(settings, start, end, customers, rewrite=tuple(todo)) if parquet else 0
    return {
        "parquet_days": exported,
        "days_written": len(todo),
        "days_replaced": replaced,
        "days_completed": completed,
        "days_kept": len(days) - len(todo),
        "rows": len(days) * customers,
    }
