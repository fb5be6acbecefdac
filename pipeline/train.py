"""Train: fit an XGBoost model on a labelled window, evaluate it on the held-out days after it, register it,
and move the ``champion`` alias according to the promotion rule."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline import db, kinds, registry
from pipeline.assess import assess, contribution_reference, labels, manifest, score_reference
from pipeline.config import Settings
from pipeline.drift import feature_reference
from pipeline.errors import ModelError, NightscoreError
from pipeline.features import training_frame
from pipeline.jobs import JobSpec
from pipeline.schedule import default_day, job_today
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
    window: dict[str, Any] | None = None  # the days as used: the bounds, the days with rows, the empty ones
    notes: list[str] | None = None  # what a person should know (empty days in the window)


def matured_until(spec: JobSpec, now: datetime | None = None) -> date:
    """The latest day whose labels have matured: a day's outcomes are complete ``evaluation.mature_days``
    after it, so ``today - mature_days`` (today in the job's time zone); without an evaluation section, the
    latest complete day."""
    today = job_today(spec.timezone, now)
    return min(today - timedelta(days=spec.mature_days), default_day(spec.timezone, now))


def immature(spec: JobSpec, end: date, ready: date) -> NightscoreError:
    """The refusal of a window ending ``end``, after ``ready``, the latest day whose labels have matured."""
    return NightscoreError(
        f"the training window of job {spec.name!r} ends {end}, but labels are complete only {spec.mature_days} day(s) after their day "
        f"(evaluation.mature_days): the latest day with matured labels is {ready}; a model trained on {end} would learn "
        f"outcomes that have not happened yet",
        where=str(spec.spec_path),
        fix=f"train with --end {ready} or earlier (the default), or pass --allow-immature-labels if this source's labels are final at once",
    )


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


def train_model(
    settings: Settings,
    spec: JobSpec,
    *,
    end: date | None = None,
    promote: Promote = "if_none",
    allow_immature: bool = False,
    now: datetime | None = None,
) -> TrainResult:
    """Train on ``train_days`` days then evaluate on the ``holdout_days`` days ending at ``end`` (default: the
    latest day whose labels have matured, :func:`matured_until`). A window ending later is refused unless
    ``allow_immature`` (labels final at once, as the demo's). Days of the window without rows are reported in
    the result's ``notes`` and the manifest's window."""
    import xgboost as xgb

    t = spec.training
    ready = matured_until(spec, now)
    end = end or ready
    if end > ready and not allow_immature:
        raise immature(spec, end, ready)
    holdout_start = end - timedelta(days=t.holdout_days - 1)
    train_start = holdout_start - timedelta(days=t.train_days)
    table = load_window(settings, spec, train_start, end + timedelta(days=1))
    counts = dict(zip(*(c.to_pylist() for c in pc.value_counts(table.column("ds")).flatten()), strict=True)) if table.num_rows else {}
    days = [train_start + timedelta(days=i) for i in range((end - train_start).days + 1)]
    empty = [d for d in days if not counts.get(d)]
    is_holdout = pc.greater_equal(table.column("ds"), pa.scalar(holdout_start, pa.date32()))
    train_t, hold_t = table.filter(pc.invert(is_holdout)), table.filter(is_holdout)
    where = str(spec.spec_dir / spec.training.sql)
    if train_t.num_rows == 0 or hold_t.num_rows == 0:
        raise NightscoreError(
            f"not enough labelled data for job {spec.name!r}: {train_t.num_rows} training rows ({train_start}..{holdout_start - timedelta(days=1)}), "
            f"{hold_t.num_rows} holdout rows ({holdout_start}..{end})",
            where=where,
            fix=f"load data for those days (for the demo: nightscore demo-data --start {train_start}; its outcomes are final at once, "
            "so --allow-immature-labels with a later --end also works), or pass another --end",
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
        "train_days_with_rows": sum(1 for d in days if d < holdout_start and counts.get(d)),
        "holdout_days_with_rows": sum(1 for d in days if d >= holdout_start and counts.get(d)),
        "empty_days": [d.isoformat() for d in empty],
        "labels_matured_until": ready,
    }
    notes = (
        [
            f"{len(empty)} day(s) of the window have no rows: {', '.join(d.isoformat() for d in empty[:7])}{' …' if len(empty) > 7 else ''}"
            f" (the holdout has {window['holdout_days_with_rows']} of its {t.holdout_days} days)"
        ]
        if empty
        else []
    )
    for note in notes:
        log.warning("training %s: %s", spec.name, note)
    man = manifest(
        spec,
        info,
        metrics=metrics,
        window=window,
        reference={
            **score_reference(spec, held),
            "features": feature_reference(spec, train_t),
            "contributions": contribution_reference(spec, booster, hold_t, info, settings.threads),
        },
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
        return TrainResult(same.name, same.version, metrics, False, reason, champion, registered=False, window=window, notes=notes)
    mv = registry.register(eng, store, spec.model.name, model_bytes, man)
    promoted, reason = decide(eng, store, spec, promote, champion, metrics, hold_t, y_hold)
    if promoted:
        registry.set_alias(eng, spec.model.name, spec.model.alias, mv.version, reason=reason)
    log.info("model %s v%s: %s; %s", mv.name, mv.version, kinds.headline(kind, metrics), reason)
    _alert_training(eng, spec, mv.version, promoted, champion, reason, metrics, end)
    from pipeline.metrics import export

    export(settings, spec.name, eng)  # the model's _info, and the training alert's counter
    return TrainResult(mv.name, mv.version, metrics, promoted, reason, champion, window=window, notes=notes)


def _alert_training(
    eng: Any, spec: JobSpec, version: int, promoted: bool, champion: int | None, reason: str, metrics: dict[str, Any], end: date
) -> None:
    """The training outcome through the job's alert rules: a new champion (info), a version kept out because
    it was not better than the champion (warn). Sent only where ``alerts.rules.training.min_level`` lets it."""
    from pipeline import alerts

    level = "info" if promoted or champion is None else "warn"
    alerts.route(
        eng,
        spec.alerts,
        alerts.Alert(
            job=spec.name,
            ds=end.isoformat(),
            kind="training",
            level=level,
            summary=f"{spec.model.name} v{version} trained on the window ending {end}: {reason}",
            detail=kinds.headline(spec.model.kind, metrics),
        ),
    )


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
