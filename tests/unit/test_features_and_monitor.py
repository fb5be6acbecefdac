from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from pipeline.config import PROJECT_ROOT
from pipeline.features import to_matrix
from pipeline.jobs import load_job
from pipeline.monitor import psi, reference_bins
from pipeline.train import auc, log_loss

pytestmark = pytest.mark.unit

SPEC = load_job(PROJECT_ROOT / "dags" / "jobs", "churn")


def _table(**overrides):
    cols = {
        "customer_id": [1, 2, 3],
        "tenure_months": [1, 2, None],
        "monthly_spend": [10.0, 20.5, 30.0],
        "sessions_30d": [5, 6, 7],
        "support_tickets_90d": [0, 1, 2],
        "days_since_last_login": [1.0, None, 3.0],
        "avg_session_minutes": [4.0, 5.0, 6.0],
        "discount_pct": [0.0, 5.0, 10.0],
        "plan": ["basic", "premium", "gold"],
        "region": ["north", "west", None],
        "payment_method": ["card", None, "invoice"],
    }
    cols.update(overrides)
    return pa.table(cols)


def test_matrix_follows_contract_order_and_codes_categories():
    m = to_matrix(_table(), SPEC)
    assert m.shape == (3, 10) and m.dtype == np.float32 and m.flags.c_contiguous
    plan = SPEC.feature_names.index("plan")
    assert m[0, plan] == 0 and m[1, plan] == 2  # index in the contract's values list
    assert math.isnan(m[2, plan])  # unknown category → missing
    region = SPEC.feature_names.index("region")
    assert m[1, region] == 3 and math.isnan(m[2, region])
    assert math.isnan(m[2, SPEC.feature_names.index("tenure_months")])
    assert m[1, SPEC.feature_names.index("monthly_spend")] == np.float32(20.5)


def test_matrix_fills_a_reused_buffer_with_the_same_values():
    fresh = to_matrix(_table(), SPEC)
    buffer = np.full((5, 10), 7.0, dtype=np.float32)
    m = to_matrix(_table(), SPEC, buffer)
    assert np.shares_memory(m, buffer) and m.shape == (3, 10) and m.flags.c_contiguous
    np.testing.assert_array_equal(m, fresh)  # NaN in the same places too
    small = np.zeros((2, 10), dtype=np.float32)  # too few rows: a new matrix instead
    assert not np.shares_memory(to_matrix(_table(), SPEC, small), small)


def test_psi_is_small_for_same_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(1)
    ref = reference_bins(rng.beta(2, 5, 50_000))
    assert psi(ref, rng.beta(2, 5, 50_000)) < 0.01
    assert psi(ref, rng.beta(5, 2, 50_000)) > 0.5


def test_auc_and_log_loss():
    y = np.array([0, 0, 1, 1])
    assert auc(y, np.array([0.1, 0.4, 0.35, 0.8])) == 0.75
    assert auc(y, np.array([0.1, 0.2, 0.3, 0.4])) == 1.0
    assert abs(log_loss(y, np.array([0.5] * 4)) - math.log(2)) < 1e-9
