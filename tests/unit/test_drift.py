"""Feature and score drift against a binned training reference (pipeline.drift), on generated data."""

from __future__ import annotations

from datetime import date

import numpy as np
import pyarrow as pa
import pytest

from pipeline.config import PROJECT_ROOT
from pipeline.demo import generate_day
from pipeline.drift import DriftCounter, day_metrics, feature_reference, merge_counts, summary
from pipeline.jobs import load_job

pytestmark = pytest.mark.unit

SPEC = load_job(PROJECT_ROOT / "dags" / "jobs", "churn")


@pytest.fixture(scope="module")
def reference():
    train = pa.concat_tables([generate_day(date(2026, 3, d), 2_000) for d in range(1, 8)])
    return feature_reference(SPEC, train)


def _metrics(reference, table, shards=1):
    parts = []
    for i in range(shards):
        counter = DriftCounter(reference)
        for batch in table.slice(i * table.num_rows // shards, table.num_rows // shards).to_batches(max_chunksize=700):
            counter.add(batch)
        parts.append(counter.to_json())
    metrics = day_metrics(reference, merge_counts(parts), SPEC.drift)
    return {(m["feature"], m["metric"]): m for m in metrics}


def test_a_day_like_training_raises_nothing(reference):
    metrics = _metrics(reference, generate_day(date(2026, 3, 20), 5_000))
    assert {m["level"] for m in metrics.values()} == {"ok"}, [m for m in metrics.values() if m["level"] != "ok"]
    assert metrics[("monthly_spend", "ks")]["value"] < 0.05 and metrics[("plan", "js")]["value"] < 0.05


def test_a_shifted_mean_and_a_doubled_category_raise_those_features_only(reference):
    day = generate_day(date(2026, 3, 20), 5_000).to_pandas()
    day["monthly_spend"] = day["monthly_spend"] * 1.6 + 20  # the mean moved
    premium = day.index[day["plan"] != "premium"][: int((day["plan"] == "premium").sum())]
    day.loc[premium, "plan"] = "premium"  # premium's share doubled
    metrics = _metrics(reference, pa.Table.from_pandas(day, preserve_index=False))
    raised = {f for (f, _), m in metrics.items() if m["level"] == "alert"}
    assert raised == {"monthly_spend", "plan"}, {k: m for k, m in metrics.items() if m["level"] != "ok"}
    assert metrics[("monthly_spend", "psi")]["level"] == metrics[("monthly_spend", "ks")]["level"] == "alert"
    assert metrics[("plan", "js")]["level"] == "alert" and metrics[("plan", "psi")]["level"] in ("warn", "alert")
    assert summary(list(metrics.values()))["level"] == "alert"


def test_shards_add_up_to_the_whole_day(reference):
    day = generate_day(date(2026, 3, 20), 6_000)
    whole, split = _metrics(reference, day), _metrics(reference, day, shards=3)
    assert {k: m["value"] for k, m in whole.items()} == pytest.approx({k: m["value"] for k, m in split.items()})


def test_nulls_and_values_outside_the_reference_are_measured(reference):
    day = generate_day(date(2026, 3, 20), 4_000).to_pandas()
    day.loc[: 799, "avg_session_minutes"] = np.nan  # 20% null, nullable in the contract
    day.loc[: 399, "tenure_months"] = 599  # beyond anything seen in training (within the contract)
    metrics = _metrics(reference, pa.Table.from_pandas(day, preserve_index=False))
    assert metrics[("avg_session_minutes", "null_rate")]["level"] == "alert"
    assert metrics[("tenure_months", "out_of_range")]["value"] == pytest.approx(0.1, abs=0.01)
    assert metrics[("tenure_months", "out_of_range")]["level"] == "alert"


def test_bin_counts_put_each_value_where_a_lookup_among_the_edges_does():
    from pipeline.drift import bin_counts

    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(size=20_000), [0.0, 1.0, -1.0] * 50])  # ties on the edges too
    edges = np.quantile(x, np.linspace(0, 1, 101))
    edges[50] = 0.0
    expected = np.bincount(np.searchsorted(edges[1:-1], x, side="right"), minlength=100)
    assert bin_counts(x, edges).tolist() == expected.tolist()
    assert bin_counts(x, np.array([0.0, 1.0])).tolist() == [len(x)]
