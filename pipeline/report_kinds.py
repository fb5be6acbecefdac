"""What the HTML reports (:mod:`pipeline.report`) show that depends on the model's kind: the score's title and
axis (a probability or a predicted value), a multiclass model's class shares, the model's own metrics (from
its holdout, or the reference window of a model registered from a file), and the job report's performance
section: binary AUC and calibration, multiclass accuracy and log loss with the confusion matrix, regression
RMSE with predicted against actual by decile and the residuals.

Everything read from the registry or the evaluations is read with defaults: a key a model or an older row
lacks shows as blank, never as a template error.
"""

from __future__ import annotations

from typing import Any

from pipeline import kinds
from pipeline.report import LEVEL_COLOURS, _date_axis, _figure, _style, _svg

# per kind: the score section's title, what the score is (axis label), the mean's name
SCORE_TEXT = {
    "binary": ("Score distribution: the positive class's probability", "score (the positive class's probability)", "mean score"),
    "multiclass": ("Score distribution: the chosen class's probability", "the chosen class's probability", "mean probability"),
    "regression": ("Predicted value distribution", "predicted value", "mean predicted value"),
}
BLUE, GREY, ORANGE = "#1565c0", "#9e9e9e", "#ef6c00"


def tick(value: float) -> str:
    """A bin edge short enough for an axis: a probability or a value of any size."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def class_share_plot(shares: dict[str, Any]) -> str:
    """Each class's share of the day's choices beside its share on the model's reference rows."""
    names, ref, day = shares["values"], shares["reference"], shares["day"]
    fig = _figure(6.5, 2.4)
    ax = fig.subplots()
    x = list(range(len(names)))
    ax.bar([i - 0.2 for i in x], ref, width=0.4, color=GREY, label="model's reference")
    ax.bar([i + 0.2 for i in x], day, width=0.4, color=BLUE, label="this day")
    ax.set_xticks(x, names, fontsize=8)
    ax.set_ylabel("share of rows", fontsize=8)
    ax.set_xlabel("chosen class", fontsize=8)
    ax.legend(fontsize=8, frameon=False, ncols=2, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    _style(ax)
    return _svg(fig, "chosen class shares against the reference")


# ---- the model ------------------------------------------------------------------------------------


def model_facts(eng: Any, name: str | None, version: int | None, kind: str) -> dict[str, Any]:
    """The run's model for the run report: its kind, where it came from, the window its metrics are from
    (a trained model's holdout, a registered model's reference window) and those metrics in one phrase."""
    from pipeline import registry

    facts: dict[str, Any] = {"kind": kind, "origin": "", "window": "", "headline": ""}
    if name is None or version is None:
        return facts
    try:
        mv = registry.get_version(eng, name, version)
    except Exception:  # gone from the registry: the report goes on without it
        return facts
    metrics, window, origin = mv.metrics or {}, mv.training_window or {}, mv.origin or {}
    facts["kind"] = mv.kind or kind
    facts["headline"] = kinds.headline(facts["kind"], metrics) if facts["kind"] in kinds.KINDS else ""
    spans = [
        ("holdout", window.get("holdout_start"), window.get("holdout_end")),
        ("reference window", window.get("reference_start"), window.get("reference_end")),
        ("training", window.get("train_start"), window.get("train_end")),
    ]
    facts["window"] = next((f"{label} {a} to {b}" for label, a, b in spans if a and b), "")
    if origin.get("how") == "registered":
        facts["origin"] = "registered from a file" + (f" ({origin['file']})" if origin.get("file") else "")
    elif origin.get("how") == "trained" or not origin:
        facts["origin"] = "trained by nightscore"
    return facts


# ---- the job report's performance section ----------------------------------------------------------


def evaluation_rows(evaluations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each evaluation with ``m`` (the kind's metrics; for a row written before kinds, from its binary
    columns) and ``h`` (the holdout's), both dicts."""
    out = []
    for e in evaluations:
        m = e.get("metrics")
        if not m:
            m = {
                "auc": e.get("auc"),
                "logloss": e.get("logloss"),
                "brier": e.get("brier"),
                "precision": e.get("decision_precision"),
                "recall": e.get("decision_recall"),
                "calibration_error": e.get("calibration_error"),
            }
        out.append({**e, "kind": e.get("kind") or "binary", "m": m, "h": e.get("holdout") or {}})
    return out


def performance(evaluations: list[dict[str, Any]], kind: str, span: tuple[Any, Any] | None = None) -> dict[str, Any]:
    """The job report's performance section for the spec's kind: the rows of that kind, the plot over time,
    and the kind's own parts (a multiclass confusion matrix; a regression decile and residual plot)."""
    rows = [e for e in evaluation_rows(evaluations) if e["kind"] == kind]
    out: dict[str, Any] = {"kind": kind, "rows": rows, "other_kinds": len(evaluations) - len(rows), "svg": "", "confusion": None}
    out.update({"decile_svg": "", "residual_svg": "", "latest": None, "quantile": False})
    if not rows:
        return out
    if kind == "binary":
        out["svg"] = over_time(rows, ("auc", "AUC"), ("calibration_error", "calibration error"), span)
    elif kind == "multiclass":
        out["svg"] = over_time(rows, ("accuracy", "accuracy"), ("logloss", "log loss"), span)
        out["confusion"] = confusion_table(rows)
    else:
        out["quantile"] = any("coverage" in r["m"] for r in rows)
        out["svg"] = over_time(rows, ("rmse", "RMSE"), ("coverage", "coverage") if out["quantile"] else ("mae", "MAE"), span)
        latest = next((r for r in reversed(rows) if r["m"].get("by_decile")), None)
        if latest is not None:
            out["latest"] = latest["ds"]
            out["decile_svg"] = decile_plot(latest["m"]["by_decile"])
            if (latest["m"].get("residuals") or {}).get("counts"):
                out["residual_svg"] = residual_plot(latest["m"]["residuals"])
    return out


def over_time(rows: list[dict[str, Any]], left: tuple[str, str], right: tuple[str, str], span: tuple[Any, Any] | None = None) -> str:
    """The ``left`` metric per day beside the model's (dashed), the ``right`` one on a second axis; warn and
    alert days marked in their colour."""
    (lkey, llabel), (rkey, rlabel) = left, right
    fig = _figure(7.0, 2.6)
    ax = fig.subplots()
    ds = [r["ds"] for r in rows]
    values = [r["m"].get(lkey) for r in rows]
    ax.plot(ds, [float("nan") if v is None else v for v in values], color=BLUE, marker="o", markersize=3, label=f"{llabel} on the outcomes")
    held = [r["h"].get(lkey) for r in rows]
    ax.plot(ds, [float("nan") if v is None else v for v in held], color=GREY, linestyle="--", label=f"model's {llabel}")
    for r, v in zip(rows, values, strict=True):
        if r["level"] in ("warn", "alert") and v is not None:
            ax.plot([r["ds"]], [v], marker="o", markersize=7, color=LEVEL_COLOURS[r["level"]])
    ax.set_ylabel(llabel, fontsize=8)
    ax2 = ax.twinx()
    ax2.plot(ds, [float("nan") if r["m"].get(rkey) is None else r["m"][rkey] for r in rows], color=ORANGE, linewidth=1, label=rlabel)
    ax2.set_ylabel(rlabel, fontsize=8)
    ax2.tick_params(labelsize=8)
    lines = ax.get_lines()[:2] + ax2.get_lines()
    ax.legend(
        lines, [str(line.get_label()) for line in lines], fontsize=7, frameon=False, ncols=3, loc="lower center", bbox_to_anchor=(0.5, 1.0)
    )
    _date_axis(ax, span)
    _style(ax)
    return _svg(fig, "delayed-label performance per day")


def confusion_table(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The confusion matrices of the range's days summed (rows actual, columns chosen), with each class's
    recall and every cell's share of its row (for shading); None without one."""
    found = [r["m"] for r in rows if r["m"].get("confusion") and r["m"].get("classes")]
    if not found:
        return None
    classes = found[-1]["classes"]
    same = [m for m in found if m["classes"] == classes]  # the days scored with the latest class list
    k = len(classes)
    total = [[sum(int(m["confusion"][i][j]) for m in same) for j in range(k)] for i in range(k)]
    cells = []
    for i in range(k):
        actual = sum(total[i])
        cells.append([{"n": total[i][j], "share": total[i][j] / actual if actual else 0.0, "diagonal": i == j} for j in range(k)])
    recall = [total[i][i] / sum(total[i]) if sum(total[i]) else None for i in range(k)]
    return {"classes": classes, "cells": cells, "recall": recall, "days": len(same), "rows": sum(map(sum, total))}


def decile_plot(bins: list[dict[str, Any]]) -> str:
    """Mean outcome against mean prediction per decile of prediction, with the diagonal (a perfect model)."""
    fig = _figure(4.6, 3.2)
    ax = fig.subplots()
    pred = [b["mean_predicted"] for b in bins]
    actual = [b["mean_actual"] for b in bins]
    lo, hi = min(pred + actual), max(pred + actual)
    ax.plot([lo, hi], [lo, hi], color=GREY, linestyle="--", linewidth=1, label="predicted = actual")
    ax.plot(pred, actual, color=BLUE, marker="o", markersize=4, label="decile of prediction")
    ax.set_xlabel("mean predicted value", fontsize=8)
    ax.set_ylabel("mean actual value", fontsize=8)
    ax.legend(fontsize=7, frameon=False, loc="upper left")
    _style(ax)
    return _svg(fig, "predicted against actual by decile of prediction")


def residual_plot(residuals: dict[str, Any]) -> str:
    """The residuals' histogram (actual - predicted), zero marked."""
    edges, counts = residuals["edges"], residuals["counts"]
    fig = _figure(4.6, 3.2)
    ax = fig.subplots()
    widths = [edges[i + 1] - edges[i] for i in range(len(counts))]
    ax.bar(edges[:-1], counts, width=widths, align="edge", color=BLUE, edgecolor="white", linewidth=0.5)
    ax.axvline(0.0, color=LEVEL_COLOURS["alert"], linestyle="--", linewidth=1)
    ax.set_xlabel("residual (actual - predicted)", fontsize=8)
    ax.set_ylabel("rows", fontsize=8)
    _style(ax)
    return _svg(fig, "residuals")


def latest_line(evaluations: list[dict[str, Any]]) -> str | None:
    """The latest evaluated day of ``evaluations`` in one phrase (``nightscore report``'s output)."""
    from pipeline.evaluate_kinds import summary

    rows = evaluation_rows(evaluations)
    if not rows:
        return None
    e = rows[-1]
    return f"latest evaluated day {e['ds']} (v{e['model_version']}, {e['kind']}): {summary(e['kind'], e['m'], e['h'])}: {e['level']}"
