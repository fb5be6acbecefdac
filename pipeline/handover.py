"""``nightscore model register``: a model trained elsewhere, handed over as a file, checked against the job's
feature contract, assessed on a reference window of the job's training query and registered like a trained
one (always as UBJSON), so that scoring, drift, ``model list`` and the champion gate treat both alike.

Reading the file (and refusing pickles) is :mod:`pipeline.modelfile`; the assessment is :mod:`pipeline.assess`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline import db, kinds, registry
from pipeline.assess import assess, contribution_reference, labels, manifest, predict, score_reference
from pipeline.config import Settings
from pipeline.drift import feature_reference
from pipeline.errors import ModelError
from pipeline.jobs import JobSpec
from pipeline.modelfile import ModelFile, load, origin_format, read_model_file
from pipeline.schedule import default_day
from pipeline.storage import open_store

log = logging.getLogger(__name__)


@dataclass
class Registered:
    """What ``model register`` did: the version (a new one, or the identical one found), and what to tell."""

    model_name: str
    version: int
    registered: bool  # False: a byte-identical version existed (``version`` is that one); nothing was stored
    promoted: bool
    format: str
    coding: list[str]  # how each categorical feature will be coded (kinds.coding_notes)
    window: tuple[date, date]
    rows: int
    labelled: int
    metrics: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    previous: int | None = None  # the alias's version before (--promote moves it)


def check(spec: JobSpec, mf: ModelFile, info: kinds.ModelInfo) -> None:
    """Refuse a model that does not fit the job's contract, with every problem in one error."""
    problems = kinds.check_model(spec, info)
    if problems:
        listed = (
            problems[0]
            if len(problems) == 1
            else f"{len(problems)} problems: " + "; ".join(f"({i}) {p}" for i, p in enumerate(problems, 1))
        )
        raise ModelError(
            f"{mf.given.name} does not fit job {spec.name!r}: {listed}",
            where=str(mf.given),
            fix=f"train the model on the features of {spec.spec_path.name} (names, order, types and category values) "
            "with an objective for the job's model.kind, or change the spec to match the model",
        )


def reference_window(spec: JobSpec, end: date | None, days: int | None) -> tuple[date, date]:
    """The days the model is assessed on: ``days`` (default ``training.train_days``) ending at ``end`` (default:
    the latest complete day in the job's time zone)."""
    last = end or default_day(spec.timezone)
    return last - timedelta(days=(days or spec.training.train_days) - 1), last


@dataclass(frozen=True)
class Reference:
    """The model on the reference rows: the kind's metrics (labelled rows only) and what drift compares with."""

    rows: int
    labelled: int
    metrics: dict[str, Any]
    drift: dict[str, Any]  # the manifest's ``reference``: score and features (empty without rows)


def reference(spec: JobSpec, booster: Any, info: kinds.ModelInfo, table: pa.Table) -> Reference:
    """The kind's metrics on the rows whose label is known, the score and feature references on every row."""
    if table.num_rows == 0:
        return Reference(0, 0, {}, {})
    known = table.filter(pc.is_valid(table.column(spec.training.label)))
    metrics: dict[str, Any] = {}
    if known.num_rows:
        metrics = assess(spec, booster, known, labels(known, spec, str(spec.spec_dir / spec.training.sql)), info).metrics
    everything = assess(spec, booster, table, None, info)
    drift = {
        **score_reference(spec, everything),
        "features": feature_reference(spec, table),
        "contributions": contribution_reference(spec, booster, table, info),
    }
    return Reference(table.num_rows, known.num_rows, metrics, drift)


def probe_rows(spec: JobSpec, n: int = 64) -> pa.Table:
    """Made-up rows over the contract's ranges and every category (and nulls), to compare two copies of a model
    when the reference window has no rows."""
    rng = np.random.default_rng(0)
    cols: dict[str, pa.Array] = {}
    for f in spec.features:
        if f.type == "category":
            values = [*(f.values or []), None]
            cols[f.name] = pa.array([values[i % len(values)] for i in range(n)], pa.string())
        else:
            lo = f.min if f.min is not None else -100.0
            hi = f.max if f.max is not None else lo + 200.0
            x = rng.uniform(lo, hi, n)
            cols[f.name] = pa.array(np.round(x) if f.type in ("int", "bool") else x, pa.float64())
    return pa.table(cols)


def same_predictions(spec: JobSpec, original: Any, stored: Any, info: kinds.ModelInfo, rows: pa.Table, mf: ModelFile) -> None:
    """The stored (UBJSON) copy, with the categories it keeps, must predict what the handed-over model predicts on ``rows``."""
    a = np.asarray(predict(spec, original, rows, info), dtype=np.float64)
    b = np.asarray(predict(spec, stored, rows), dtype=np.float64)
    if a.shape != b.shape or not np.allclose(a, b, rtol=0, atol=1e-7, equal_nan=True):
        gap = float(np.nanmax(np.abs(a - b))) if a.shape == b.shape else float("nan")
        raise ModelError(
            f"{mf.given.name} converted to UBJSON predicts differently from the file (largest difference {gap:.3g} on {rows.num_rows:,} rows)",
            where=str(mf.path),
            fix='save the model as UBJSON where it was trained (model.save_model("model.ubj")) and register that file',
        )


def _as_ubj(booster: Any) -> tuple[bytes, Any]:
    import xgboost as xgb

    data = bytes(booster.save_raw("ubj"))
    copy = xgb.Booster()
    copy.load_model(bytearray(data))
    return data, copy


def version_manifest(
    spec: JobSpec, booster: Any, info: kinds.ModelInfo, ref: Reference, window: tuple[date, date], origin: dict[str, Any]
) -> dict[str, Any]:
    """The version's manifest, with the keys ``nightscore train`` writes (the window is the reference window)."""
    start, end = window
    return manifest(
        spec,
        info,
        metrics={**ref.metrics, "reference_rows": ref.rows, "labelled_rows": ref.labelled},
        # train_start and holdout_end too: readers of trained versions' windows show these
        window={"reference_start": start, "reference_end": end, "train_start": start, "holdout_end": end},
        reference=ref.drift,
        origin=origin,
        params={},
        num_boost_round=booster.num_boosted_rounds(),
    )


@dataclass(frozen=True)
class HandedOver:
    """A model file read, loaded, checked against the job and converted to the bytes the registry keeps."""

    file: ModelFile
    booster: Any  # as loaded from the file
    info: kinds.ModelInfo
    format: str  # ubj | json | sklearn-ubj | sklearn-json | mlflow
    model_bytes: bytes  # UBJSON
    stored: Any  # the booster loaded back from model_bytes


def hand_over(spec: JobSpec, path: Path) -> HandedOver:
    """Read and load the model at ``path``, refuse it unless it fits ``spec``, and convert it to UBJSON (no database)."""
    from pipeline.shards import xgboost_ran

    mf = read_model_file(path)
    xgboost_ran()
    booster = load(mf)
    info = kinds.model_info(booster)
    check(spec, mf, info)
    model_bytes, stored = _as_ubj(booster)
    return HandedOver(mf, booster, info, origin_format(mf, booster), model_bytes, stored)


def origin(h: HandedOver, who: str, note: str | None) -> dict[str, Any]:
    """Where a registered version came from (``model_versions.origin`` and its manifest)."""
    mf = h.file
    return {
        "how": "registered",
        "file": mf.given.name,
        "sha256": mf.sha256,
        "format": h.format,
        "mlflow_run_id": mf.mlflow_run_id,
        "registered_by": who,
        "note": note,
    }


def register_file(
    settings: Settings,
    spec: JobSpec,
    path: Path,
    *,
    promote: bool = False,
    note: str | None = None,
    end: date | None = None,
    days: int | None = None,
    by: str | None = None,
) -> Registered:
    """Register the model at ``path`` as the next version of ``spec.model.name`` (nothing when a byte-identical
    version exists); with ``promote`` point ``spec.model.alias`` at it."""
    from pipeline.train import load_window

    h = hand_over(spec, path)
    window = reference_window(spec, end, days)
    eng = db.ready_engine(settings)
    name, alias = spec.model.name, spec.model.alias
    done = Registered(name, 0, False, False, h.format, kinds.coding_notes(spec, h.info), window, 0, 0)
    done.previous = registry.aliases(eng, name).get((name, alias))
    same = registry.find_identical(eng, name, h.model_bytes)
    if same is not None:
        done.version = same.version
        return done
    table = load_window(settings, spec, window[0], window[1] + timedelta(days=1))
    same_predictions(spec, h.booster, h.stored, h.info, table if table.num_rows else probe_rows(spec), h.file)
    ref = reference(spec, h.booster, h.info, table)
    done.rows, done.labelled, done.metrics, done.warnings = ref.rows, ref.labelled, ref.metrics, warnings(spec, ref, window)
    who = by or registry.current_user()
    man = version_manifest(spec, h.booster, h.info, ref, window, origin(h, who, note))
    mv = registry.register(eng, open_store(settings), name, h.model_bytes, man, by=who)
    done.version, done.registered = mv.version, True
    if promote:
        done.previous = registry.set_alias(eng, name, alias, mv.version, reason=f"registered from {h.file.given.name}", by=who)
        done.promoted = True
    log.info(
        "model %s v%s registered from %s (%s): %s", name, mv.version, h.file.given, h.format, kinds.headline(spec.model.kind, ref.metrics)
    )
    return done


def warnings(spec: JobSpec, ref: Reference, window: tuple[date, date]) -> list[str]:
    """What the version lacks, and why."""
    days = f"{window[0]}..{window[1]}"
    if ref.rows == 0:
        return [
            f"the job's training query returned no rows for {days}: this version has no metrics and no drift reference, "
            "so drift is not measured when it scores (--end and --days choose the reference window)"
        ]
    if ref.labelled == 0:
        return [f"no row of {days} has a known {spec.training.label}: this version has no metrics (drift is measured)"]
    return []
