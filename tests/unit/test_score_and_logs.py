"""The score stage on a model made here (what XGBoost's own predict gives, batch by batch, less the dropped
keys), the snapshot's checksum, and where the logs go."""

from __future__ import annotations

import hashlib
import logging
from datetime import date

import numpy as np
import pyarrow.parquet as pq
import pytest
import xgboost as xgb

from pipeline.config import PROJECT_ROOT
from pipeline.demo import generate_day
from pipeline.extract import file_sha256
from pipeline.features import to_matrix
from pipeline.jobs import load_job
from pipeline.registry import ModelVersion
from pipeline.score import PREDICTION_SCHEMA, score

pytestmark = pytest.mark.unit

SPEC = load_job(PROJECT_ROOT / "dags" / "jobs", "churn")
DAY = date(2026, 3, 15)


def test_score_writes_the_models_own_predictions_for_every_row_but_the_dropped(tmp_path):
    table = generate_day(DAY, customers=700)
    path = tmp_path / "features.parquet"
    pq.write_table(table, path)
    x = to_matrix(table, SPEC)
    spend = table.column("monthly_spend").to_numpy()
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 3, "nthread": 1}, xgb.DMatrix(x, label=spend > np.median(spend)), 8
    )
    mv = ModelVersion("m", 4, "file:///m", "0" * 64, [{"name": n} for n in SPEC.feature_names], {}, {}, xgb.__version__)
    keys = table.column(SPEC.entity_key).to_pylist()
    dropped = keys[:3]
    scored = score(SPEC, DAY, path, booster, mv, "run-1", tmp_path / "p.parquet", threads=1, batch_rows=128, drop_keys=dropped)
    out = pq.read_table(scored.uri)
    assert out.schema == PREDICTION_SCHEMA and scored.rows == out.num_rows == len(keys) - 3
    expected = dict(zip(map(str, keys), booster.inplace_predict(x), strict=True))
    got = dict(zip(out.column("entity_id").to_pylist(), out.column("score").to_pylist(), strict=True))
    assert set(got) == set(expected) - {str(k) for k in dropped}
    assert max(abs(got[k] - float(expected[k])) for k in got) < 1e-6
    labels = out.column("label").to_pylist()
    assert labels == [SPEC.decision.positive if s >= SPEC.decision.threshold else SPEC.decision.negative for s in out.column("score").to_pylist()]
    assert set(out.column("model_version").to_pylist()) == {4} and set(out.column("ds").to_pylist()) == {DAY}


def test_the_snapshot_checksum_is_the_files_sha256(tmp_path):
    path = tmp_path / "f.parquet"
    path.write_bytes(b"x" * (3 << 20))  # more than one read of 1 MiB
    assert file_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_logs_go_to_the_homes_file_and_warnings_to_the_terminal(tmp_path, monkeypatch, capsys):
    from pipeline.logsetup import setup_logging

    monkeypatch.setenv("NIGHTSCORE_HOME", str(tmp_path / "home"))
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, root.__dict__.pop("_nightscore", "unset"))
    try:
        handler = setup_logging()
        assert handler is not None and setup_logging() is handler  # once per process
        logging.getLogger("pipeline.test").info("an info line")
        logging.getLogger("pipeline.test").warning("a warning line")
        handler.flush()
        text = (tmp_path / "home" / "logs" / "nightscore.log").read_text()
        assert "INFO pipeline.test: an info line" in text and "WARNING pipeline.test: a warning line" in text
        err = capsys.readouterr().err
        assert "a warning line" in err and "an info line" not in err
    finally:
        for h in root.handlers[:]:
            if h not in saved[0]:
                root.removeHandler(h)
                h.close()
        root.setLevel(saved[1])
        root.__dict__.pop("_nightscore", None)
        if saved[2] != "unset":
            root._nightscore = saved[2]  # type: ignore[attr-defined]
