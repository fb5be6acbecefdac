"""The Assets nightscore's DAGs emit and are scheduled on, and what their events carry (``extra``).

- ``nightscore://predictions/<job>``: a day published (emitted by ``score_<job>``'s publish task);
- ``nightscore://drift/<job>``: a day's drift at its alert level (``score_<job>``'s drift_alert task);
- ``nightscore://performance/<job>``: a day's delayed-label performance at its alert level
  (``evaluate_<job>``); ``train_<job>`` is scheduled on drift *or* performance, beside its cron.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Asset


def predictions_asset(job: str) -> Asset:
    """The published predictions of one job; schedule a downstream DAG on it with ``schedule=[asset]``."""
    return Asset(name=f"nightscore_predictions_{job}", uri=f"nightscore://predictions/{job}", group="nightscore")


def drift_asset(job: str) -> Asset:
    """A day of ``job`` whose drift reached its alert level: ``train_<job>`` is scheduled on it, beside its cron."""
    return Asset(name=f"nightscore_drift_{job}", uri=f"nightscore://drift/{job}", group="nightscore")


def performance_asset(job: str) -> Asset:
    """A day of ``job`` whose delayed-label performance reached its alert level (emitted by ``evaluate_<job>``)."""
    return Asset(name=f"nightscore_performance_{job}", uri=f"nightscore://performance/{job}", group="nightscore")


def retrain_assets(job: str) -> Any:
    """What ``train_<job>`` is scheduled on beside its cron: drift *or* performance at its alert level."""
    return drift_asset(job) | performance_asset(job)


def _run_facts(state: dict[str, Any]) -> dict[str, Any]:
    """Which day, run and model a run's Asset events speak of (the start of each event's ``extra``)."""
    return {
        "job": state["job"],
        "ds": state["ds"],
        "run_id": state["run_id"],
        "model_name": state.get("model_name"),
        "model_version": state.get("model_version"),
    }


def published_extra(state: dict[str, Any]) -> dict[str, Any]:
    """The ``extra`` of the Asset event a publish emits: which day, run and model, and the counts."""
    counts = state.get("counts") or {}
    return {
        **_run_facts(state),
        "shards": state.get("shards", 1),
        "rows_published": counts.get("published", 0),
        "rows_quarantined": counts.get("quarantined", 0),
    }


def drift_extra(state: dict[str, Any]) -> dict[str, Any] | None:
    """The drift Asset event's ``extra`` (what crossed its alert level, on which day and model), or None when
    nothing did."""
    drift = state.get("drift") or {}
    if drift.get("level") != "alert":
        return None
    return {"trigger": "drift", **_run_facts(state), "alerts": drift.get("alerts", [])}


def drift_events(context: Any) -> list[dict[str, Any]]:
    """The ``extra`` of each drift or performance Asset event that started this run (none for a scheduled or
    manual run)."""
    events = context.get("triggering_asset_events") or {}
    found = []
    for _asset, evs in getattr(events, "items", lambda: [])():
        for ev in evs:
            extra = dict(getattr(ev, "extra", None) or {})
            if extra.get("alerts") is not None:
                found.append(extra)
    return found


def training_reason(context: Any) -> str:
    """Why this training run runs, for its log: the drift events that started it, or its schedule / a person."""
    found = drift_events(context)
    if found:
        return "; ".join(
            f"{e.get('trigger', 'drift')} reached its alert level: {e.get('job')} {e.get('ds')} (model v{e.get('model_version')}): "
            + ", ".join(e["alerts"])
            for e in found
        )
    run_type = str(getattr(context.get("dag_run"), "run_type", "") or "")
    return "its schedule" if run_type.lower().endswith("scheduled") else f"a {run_type or 'manual'} run"
