"""Train: fit an XGBoost model on a labelled window, evaluate it on the held-out days after it, register it,
and move the ``champion`` alias according to the promotion rule."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline import db, kinds, registry
from pipeline.assess import assess, labels, manifest, score_reference
from pipeline.config import Settings
from pipeline.drift import feature_reference
from pipeline.errors import ModelError, NightscoreError
from pipeline.features import training_frame
from pipeline.jobs import JobSpec
from pipeline.schedule import default_day
from pipeline.storage import open_store

log = logging.getLogger(__name__)

Promote = Literal["if_none", "if_better", "always", "never"]


@dataclass(frozen=True)
class TrainResult:
    model_name: str
    version: int
    metrics: dict[str, float]
    promoted: bool
    reason: str
    champion_before: int | None
    registered: bool = True  # False: an identical version existed already (``version`` is that one)


def auc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve (rank formulation, ties averaged)."""
    from scipy.stats import rankdata

    y = y.astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(p)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def load_window(settings: Settings, spec: JobSpec, start: date, end: date) -> pa.Table:
    """Labelled rows for days ``start``..``end - 1``."""
    from pipeline.sources import read_query

    what = f"the training query of job {spec.name!r} for {start}..{end}"
    table = read_query(settings, spec, spec.training.sql, what, start=start, end=end)
    missing = [c for c in ["ds", spec.training.label, *spec.feature_names] if c not in table.column_names]
    if missing:
        raise NightscoreError(
            f"the training query of job {spec.name!r} lacks columns {missing}",
            where=str(spec.spec_dir / spec.training.sql),
            fix="select ds, the label and every feature of the contract",
        )
    return table


def train_model(settings: Settings, spec: JobSpec, *, end: date | None = None, promote: Promote = "if_none") -> TrainResult:
    """Train on ``train_days`` days then evaluate on the ``holdout_days`` days ending at ``end`` (default: the
    latest complete day in the job's time zone, :func:`pipeline.schedule.default_day`)."""
    import xgboost as xgb

    t = spec.training
    end = end or default_day(spec.timezone)
    holdout_start = end - timedelta(days=t.holdout_days - 1)
    train_start = holdout_start - timedelta(days=t.train_days)
    table = load_window(settings, spec, train_start, end + timedelta(days=1))
    is_holdout = pc.greater_equal(table.column("ds"), pa.scalar(holdout_start, pa.date32()))
    train_t, hold_t = table.filter(pc.invert(is_holdout)), table.filter(is_holdout)
    where = str(spec.spec_dir / spec.training.sql)
    if train_t.num_rows == 0 or hold_t.num_rows == 0:
        raise NightscoreError(
            f"not enough labelled data for job {spec.name!r}: {train_t.num_rows} training rows ({train_start}..{holdout_start - timedelta(days=1)}), "
            f"{hold_t.num_rows} holdout rows ({holdout_start}..{end})",
            where=where,
            fix="load data for those days (for the demo: nightscore demo-data) or pass another --end",
        )
    kind = spec.model.kind
    params: dict[str, Any] = {
        "objective": kinds.objective(t, kind),
        "tree_method": "hist",
        "max_cat_to_onehot": 1,
        "nthread": settings.threads,
        "seed": 7,
        **t.params,
    }
    if kind == "multiclass":
        params["num_class"] = len(spec.decision.classes or [])
    y_train, y_hold = labels(train_t, spec, where), labels(hold_t, spec, where)
    dtrain = xgb.DMatrix(training_frame(train_t, spec), label=y_train, enable_categorical=True)
    from pipeline.shards import xgboost_ran

    xgboost_ran()
    booster = xgb.train(params, dtrain, num_boost_round=t.num_boost_round)
    info = kinds.model_info(booster)
    held = assess(spec, booster, hold_t, y_hold, info)
    metrics = {**held.metrics, "train_rows": int(train_t.num_rows), "holdout_rows": int(hold_t.num_rows)}
    window = {
        "train_start": train_start,
        "train_end": holdout_start - timedelta(days=1),
        "holdout_start": holdout_start,
        "holdout_end": end,
    }
    man = manifest(
        spec,
        info,
        metrics=metrics,
        window=window,
        reference={**score_reference(spec, held), "features": feature_reference(spec, train_t)},
        origin={"how": "trained", "job": spec.name},
        params=params,
        num_boost_round=t.num_boost_round,
    )
    eng = db.ready_engine(settings)
    store = open_store(settings)
    model_bytes = bytes(booster.save_raw("ubj"))
    champion = registry.aliases(eng, spec.model.name).get((spec.model.name, spec.model.alias))
    same = registry.find_identical(eng, spec.model.name, model_bytes)
    if same is not None:  # the same data and settings give the same bytes: no copy in the registry
        reason = f"byte-identical to the registered v{same.version}: nothing new registered"
        log.info("model %s: %s", spec.model.name, reason)
        return TrainResult(same.name, same.version, metrics, False, reason, champion, registered=False)
    mv = registry.register(eng, store, spec.model.name, model_bytes, man)
    promoted, reason = decide(eng, store, spec, promote, champion, metrics, hold_t, y_hold)
    if promoted:
        registry.set_alias(eng, spec.model.name, spec.model.alias, mv.version, reason=reason)
    log.info("model %s v%s: %s; %s", mv.name, mv.version, kinds.headline(kind, metrics), reason)
    return TrainResult(mv.name, mv.version, metrics, promoted, reason, champion)


def decide(
    eng: Any, store: Any, spec: JobSpec, promote: Promote, champion: int | None, metrics: dict[str, Any], table: pa.Table, y: np.ndarray
) -> tuple[bool, str]:
    """Whether a new version becomes the alias: by ``promote``; ``if_better`` compares the kind's primary metric
    (``training.metric``) of the new version (``metrics``) and of the current one on the same labelled rows."""
    if promote == "never":
        return False, "registered only (promotion not requested)"
    if champion is None:
        if promote in ("if_none", "if_better", "always"):
            return True, f"no {spec.model.alias} yet: promoted"
        return False, "registered only"
    if promote == "always":
        return True, f"promoted over v{champion} on request"
    if promote == "if_none":
        return False, f"{spec.model.alias} is already v{champion}: kept it (use `nightscore model promote` to switch)"
    kind = spec.model.kind
    try:
        mv = registry.get_version(eng, spec.model.name, champion)
        current = registry.load_booster(store, mv)
        registry.check_fits(spec, mv, current)
        info = kinds.model_info(current)
        theirs = assess(spec, current, table, y, info).metrics
    except ModelError as exc:
        return True, f"current {spec.model.alias} v{champion} cannot be evaluated ({exc.what}): promoted"
    name = kinds.primary_metric(kind, spec.training, info.quantiles)
    ours, champ = metrics.get(name), theirs.get(name)
    if ours is None:
        return False, f"the new version has no {name} on these rows: kept v{champion}"
    if champ is None:
        return True, f"{spec.model.alias} v{champion} has no {name} on these rows: promoted"
    margin = spec.training.promote_margin
    up = kinds.higher_is_better(kind, name)
    gain = (ours - champ) if up else (champ - ours)
    said = f"{name} {ours:.4f} against {spec.model.alias} v{champion}'s {champ:.4f} ({'higher' if up else 'lower'} is better)"
    if gain >= margin:
        return True, f"{said}: better by at least {margin}: promoted"
    return False, f"{said}: not better by {margin}: kept v{champion}"
