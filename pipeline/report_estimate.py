"""The job report's estimate section (binary jobs with an evaluation block): the AUC estimated before labels
per day beside the realized AUC once the outcomes arrived, on one axis; a table of past estimates with their
error (estimated - realized); and a warning when an estimate's model was not calibrated on its holdout, the
premise of every estimate (:mod:`pipeline.estimate`)."""

from __future__ import annotations

from datetime import date
from typing import Any

from pipeline.jobs import JobSpec
from pipeline.report import LEVEL_COLOURS, _date_axis, _figure, _style, _svg

BLUE, GREEN, GREY = "#1565c0", "#2e7d32", "#757575"


def section(eng: Any, spec: JobSpec, first: date, last: date, evaluations: list[dict[str, Any]]) -> dict[str, Any]:
    """What the template's estimate section reads: ``applies`` (a binary job with an evaluation block), the
    estimates with their errors (``rows``), the plot, the mean absolute AUC error over the reconciled days,
    and ``warnings`` (one per model version whose holdout calibration is poor)."""
    from pipeline.estimate import history, wanted

    out: dict[str, Any] = {"applies": wanted(spec), "rows": [], "svg": "", "warnings": [], "reconciled": 0, "mean_abs_error": None}
    if not out["applies"]:
        return out
    rows = history(eng, spec.name, first, last)
    out["rows"] = rows
    poor: dict[tuple[str, int], tuple[str, bool]] = {}
    for r in rows:
        if r["calibrated"] is False:
            poor.setdefault((r["model_name"], r["model_version"]), (r["why"] or "its holdout checks failed", bool(r["map_used"])))
    hint = " (evaluation.estimate.use_calibration_map: true estimates through the holdout's calibration map)"
    out["warnings"] = [
        f"{name} v{version}: {why}; its scores are not probabilities to take at their word, so its estimates may be far off"
        + ("" if mapped else hint)
        for (name, version), (why, mapped) in sorted(poor.items())
    ]
    errors = [abs(r["auc_error"]) for r in rows if r["auc_error"] is not None]
    out["reconciled"] = len(errors)
    out["mean_abs_error"] = sum(errors) / len(errors) if errors else None
    if rows:
        realized = [e for e in evaluations if (e.get("kind") or "binary") == "binary" and e.get("auc") is not None]
        out["svg"] = estimate_plot(rows, realized, spec, (first, last))
    return out


def estimate_plot(rows: list[dict[str, Any]], realized: list[dict[str, Any]], spec: JobSpec, span: tuple[date, date]) -> str:
    """Per day the estimated AUC (hollow where its model was not calibrated) and the realized AUC once the
    outcomes arrived, on the same axis; the holdout's AUC dashed and the alert level dotted; warn and alert
    estimates in their colour."""
    assert spec.evaluation is not None
    fig = _figure(7.0, 2.8)
    ax = fig.subplots()
    ds = [r["ds"] for r in rows]
    est = [float("nan") if r["auc"] is None else r["auc"] for r in rows]
    ax.plot(ds, est, color=BLUE, linewidth=1.2, label="estimated AUC (scores alone)")
    for r, v in zip(rows, est, strict=True):
        colour = LEVEL_COLOURS[r["level"]] if r["level"] in ("warn", "alert") else BLUE
        ax.plot([r["ds"]], [v], marker="o", markersize=5, color=colour, markerfacecolor="white" if r["calibrated"] is False else colour)
    if realized:
        ax.plot(
            [e["ds"] for e in realized],
            [e["auc"] for e in realized],
            color=GREEN,
            marker="s",
            markersize=4,
            linestyle="none",
            label="realized AUC (outcomes)",
        )
    holdout = [(r["ds"], r["holdout_auc"]) for r in rows if r["holdout_auc"] is not None]
    if holdout:
        ax.plot([h[0] for h in holdout], [h[1] for h in holdout], color=GREY, linestyle="--", linewidth=1, label="model's holdout AUC")
        alert = spec.evaluation.auc_drop.alert
        ax.plot(
            [h[0] for h in holdout],
            [h[1] - alert for h in holdout],
            color=LEVEL_COLOURS["alert"],
            linestyle=":",
            linewidth=1,
            label="alert level",
        )
    ax.set_ylabel("AUC", fontsize=8)
    ax.legend(fontsize=7, frameon=False, ncols=4, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    _date_axis(ax, span)
    _style(ax)
    return _svg(fig, "estimated and realized AUC per day")
