"""HTML reports a person opens in a browser: one per run, beside its artifacts (``report.html``), and one per
job over time (``nightscore report --job J --days 30``).

Self-contained: the CSS is inline and every plot is an inline SVG drawn by matplotlib (its object API, no
pyplot state), so a report opens offline, from a mail attachment or an S3 link, with no script and no CDN.
The pages come from Jinja2 templates in ``pipeline/templates``; what depends on the model's kind (the score's
meaning, class shares, the performance section) is in :mod:`pipeline.report_kinds`.
"""

from __future__ import annotations

import io
import json
import re
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from pipeline import db
from pipeline.config import Settings
from pipeline.jobs import JobSpec

LEVEL_COLOURS = {"ok": "#2e7d32", "warn": "#f2a900", "alert": "#c62828", "insufficient": "#9e9e9e"}
STAGES = ("extract", "validate", "score", "load", "publish", "monitor")
STAGE_COLOURS = ("#1565c0", "#6a1b9a", "#00838f", "#ef6c00", "#2e7d32", "#757575")
OUTPUTS = ("score", "predicted_class")  # drift rows of the model's output, after the features'


# ---- plots ----------------------------------------------------------------------------------------


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=96, layout="constrained")
    return fig


def _svg(fig: Any, title: str) -> str:
    """The figure as an inline ``<svg>`` with a title for screen readers (no XML header, stable ids)."""
    import matplotlib

    matplotlib.rcParams["svg.hashsalt"] = "nightscore"
    matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text: readable by a screen reader, searchable, smaller
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    text = re.sub(r"<metadata>.*?</metadata>", "", text[text.index("<svg") :], flags=re.S)  # matplotlib's RDF block
    return re.sub(r"<svg ", f'<svg role="img" aria-label="{_attr(title)}" ', text, count=1)


def _attr(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def _style(ax: Any) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=8)


def stage_plot(seconds: dict[str, float]) -> str:
    names = [s for s in STAGES if seconds.get(s)] + [s for s in seconds if s not in STAGES and seconds.get(s)]
    fig = _figure(6.0, 0.35 * max(len(names), 1) + 0.7)
    ax = fig.subplots()
    ax.barh(names, [seconds[n] for n in names], color=[STAGE_COLOURS[STAGES.index(n)] if n in STAGES else "#555" for n in names])
    ax.invert_yaxis()
    ax.set_xlabel("seconds", fontsize=8)
    for i, n in enumerate(names):
        ax.text(seconds[n], i, f" {seconds[n]:.2f} s", va="center", fontsize=8)
    _style(ax)
    return _svg(fig, "seconds per stage")


def timeline(state: Any, shard_rows: list[dict[str, Any]], now: float) -> list[tuple[str, str, float, float]]:
    """The run's stages as ``(label, stage, start, end)`` in seconds from the run's first stage: the run's own
    (begin, publish, monitor: until ``now``, this report being written in it) and each shard's (extract,
    validate on its thread beside the extract, score, load), so that overlapping stages show as overlapping."""
    bars: list[tuple[str, str, float, float]] = []
    several = len(shard_rows) > 1
    for r in shard_rows:
        for stage, (a, b) in ((r.get("resources") or {}).get("spans") or {}).items():
            bars.append((f"shard {r['shard']} {stage}" if several else stage, stage, float(a), float(b)))
    for stage, (a, b) in (getattr(state, "spans", None) or {}).items():
        if not any(label == stage for label, *_ in bars):
            bars.append((stage, stage, float(a), float(b)))
    if not bars:
        return []
    if "monitor" not in {b[1] for b in bars}:  # the stage this report is written in: so far
        bars.append(("monitor (so far)", "monitor", max(b[3] for b in bars), now))
    t0 = min(b[2] for b in bars)
    return sorted(((label, stage, a - t0, b - t0) for label, stage, a, b in bars), key=lambda b: (b[2], b[3]))


def timeline_plot(bars: list[tuple[str, str, float, float]]) -> str:
    """Each stage as a bar from its start to its end on the run's wall clock."""
    fig = _figure(6.5, 0.3 * max(len(bars), 1) + 0.8)
    ax = fig.subplots()
    for i, (_label, stage, a, b) in enumerate(bars):
        colour = STAGE_COLOURS[STAGES.index(stage)] if stage in STAGES else "#555"
        ax.barh(i, max(b - a, 0.005), left=a, color=colour)
        ax.text(b, i, f" {b - a:.2f} s", va="center", fontsize=8)
    ax.set_yticks(range(len(bars)), [b[0] for b in bars])
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the run began (wall clock)", fontsize=8)
    _style(ax)
    return _svg(fig, "stages on the run's wall clock")


def score_plot(hist: dict[str, Any], kind: str = "binary") -> str:
    """The day's share of scores in each of the reference's decile bins, beside the reference's (the score is
    what the kind publishes: a probability, or a predicted value of any range)."""
    from pipeline.report_kinds import SCORE_TEXT, tick

    edges, ref, day = hist["edges"], hist["reference"], hist["day"]
    labels = [f"{tick(edges[i])}–{tick(edges[i + 1])}" for i in range(len(ref))]
    fig = _figure(6.5, 2.6)
    ax = fig.subplots()
    x = list(range(len(ref)))
    ax.bar([i - 0.2 for i in x], ref, width=0.4, color="#9e9e9e", label="model's holdout (reference)")
    ax.bar([i + 0.2 for i in x], day, width=0.4, color="#1565c0", label="this day")
    ax.set_xticks(x, labels, rotation=35, ha="right", fontsize=7)
    ax.set_ylabel("share of rows", fontsize=8)
    ax.set_xlabel(f"{SCORE_TEXT.get(kind, SCORE_TEXT['binary'])[1]}: the reference's deciles", fontsize=8)
    ax.legend(fontsize=8, frameon=False, ncols=2, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    _style(ax)
    return _svg(fig, "score distribution against the reference")


def feature_drift_plot(worst: list[dict[str, Any]]) -> str:
    """One bar per feature: its worst metric as a share of that metric's alert level, coloured by level."""
    fig = _figure(6.5, 0.3 * max(len(worst), 1) + 0.9)
    ax = fig.subplots()
    names = [w["feature"] for w in worst]
    ratios = [w["ratio"] for w in worst]
    ax.barh(names, ratios, color=[LEVEL_COLOURS[w["level"]] for w in worst])
    ax.axvline(1.0, color=LEVEL_COLOURS["alert"], linestyle="--", linewidth=1)
    ax.invert_yaxis()
    for i, w in enumerate(worst):
        change = "change " if w["metric"] == "null_rate" else ""  # signed: a fall shows as one
        ax.text(
            w["ratio"],
            i,
            f" {w['metric']} {change}{w['value']:+.3g}" if change else f" {w['metric']} {w['value']:.3g}",
            va="center",
            fontsize=7,
        )
    ax.set_xlabel("worst metric ÷ its alert level (dashed: alert)", fontsize=8)
    ax.set_xlim(0, max([1.2, *[r * 1.3 for r in ratios]]))
    _style(ax)
    return _svg(fig, "drift per feature")


def reasons_plot(reasons: list[dict[str, Any]]) -> str:
    fig = _figure(6.5, 0.3 * len(reasons) + 0.8)
    ax = fig.subplots()
    ax.barh([_cut(r["reason"], 60) for r in reasons], [r["rows"] for r in reasons], color="#ef6c00")
    ax.invert_yaxis()
    ax.set_xlabel("quarantined keys", fontsize=8)
    _style(ax)
    return _svg(fig, "top quarantine reasons")


def drivers_plot(rows: list[dict[str, Any]]) -> str:
    """Each feature's share of the day's mean |contribution| beside its share on the training holdout."""
    import numpy as np

    rows = rows[:15]
    fig = _figure(6.5, 0.32 * len(rows) + 0.9)
    ax = fig.subplots()
    y = np.arange(len(rows))
    ax.barh(y - 0.2, [r["day_share"] for r in rows], height=0.4, color="#1565c0", label="this day")
    ax.barh(y + 0.2, [r["reference_share"] or 0.0 for r in rows], height=0.4, color="#9e9e9e", label="training holdout")
    ax.set_yticks(y, [_cut(r["feature"], 40) for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("share of mean |contribution|", fontsize=8)
    ax.legend(fontsize=7, frameon=False)
    _style(ax)
    return _svg(fig, "what drives the scores")


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# ---- one run ---------------------------------------------------------------------------------------


def worst_per_feature(metrics: list[dict[str, Any]], thresholds: Any) -> list[dict[str, Any]]:
    """Per feature (and the score) the metric nearest its alert level: ``value / alert``."""
    best: dict[str, dict[str, Any]] = {}
    for m in metrics:
        if m.get("value") is None:
            continue
        limits = getattr(thresholds, m["metric"], None)
        alert = getattr(limits, "alert", None) or 1.0
        ratio = max(float(m["value"]), 0.0) / alert  # a null rate that fell is no step toward an alert
        if m["feature"] not in best or ratio > best[m["feature"]]["ratio"]:
            best[m["feature"]] = {**m, "ratio": ratio}
    order = {"alert": 0, "warn": 1, "ok": 2}
    return sorted(best.values(), key=lambda w: (order.get(w["level"], 3), -w["ratio"], w["feature"]))


def run_report(eng: Any, store: Any, spec: JobSpec, state: Any, manifest_key: str) -> str:
    """The HTML report of one run (its ledger row's facts, drift and quarantine read from the database)."""
    import time

    from pipeline import runs
    from pipeline.report_kinds import SCORE_TEXT, class_share_plot, model_facts
    from pipeline.shadow import report_rows as shadow_rows

    with eng.connect() as conn:
        metrics = [dict(r._mapping) for r in conn.execute(db.query("list_run_drift_metrics"), {"r": state.run_id})]
        reasons = [dict(r._mapping) for r in conn.execute(db.query("top_quarantine_reasons"), {"r": state.run_id, "limit": 10})]
    bars = timeline(state, runs.shards(eng, state.run_id), time.time())
    # every key the template reads, present (a run without a feature reference has no drift level)
    drift = {"level": None, "alerts": [], "score_psi": None, "score_mean": None, **(state.drift or {})}
    kind = spec.model.kind
    worst = worst_per_feature(metrics, spec.drift)
    by_feature: dict[str, dict[str, Any]] = defaultdict(dict)
    for m in metrics:
        by_feature[m["feature"]][m["metric"]] = m
    links = {}
    if state.data_docs_uri:
        links["Data Docs"] = store.link(store.key(state.data_docs_uri))
    links["Run manifest"] = store.link(manifest_key)
    c = state.counts
    drivers = _drivers(store, state)
    context = {
        "title": f"{state.job} {state.ds}",
        "state": state,
        "spec": spec,
        "counts": [(k, c.get(k)) for k in ("extracted", "valid", "quarantined", "scored", "published") if c.get(k) is not None],
        "quarantine_share": (c.get("quarantined", 0) / c["extracted"]) if c.get("extracted") else 0.0,
        "seconds": state.seconds,
        "wall_seconds": max((b[3] for b in bars), default=0.0),
        "stage_seconds": sum(v for k, v in state.seconds.items() if k in STAGES),
        "timeline_svg": timeline_plot(bars) if bars else (stage_plot(state.seconds) if state.seconds else ""),
        "thresholds": [(m, getattr(spec.drift, m)) for m in ("psi", "ks", "js", "null_rate", "out_of_range")],
        "kind": kind,
        "score_text": SCORE_TEXT[kind],
        "model": model_facts(eng, state.model_name, state.model_version, kind),
        "score_svg": score_plot(drift["score_hist"], kind) if drift.get("score_hist") else "",
        "class_shares": drift.get("class_shares"),
        "class_svg": class_share_plot(drift["class_shares"]) if drift.get("class_shares") else "",
        "drift": drift,
        "worst": worst,
        "drift_svg": feature_drift_plot(worst) if worst else "",
        "metric_names": ["psi", "ks", "js", "null_rate", "out_of_range"],
        "by_feature": dict(sorted(by_feature.items(), key=lambda kv: (kv[0] in OUTPUTS, kv[0]))),
        "reasons": reasons,
        "reasons_svg": reasons_plot(reasons) if reasons else "",
        "links": links,
        "shadows": shadow_rows(eng, spec, state),  # each shadow model's status and how it compares on the day
        "drivers": drivers,
        "drivers_svg": drivers_plot(drivers) if drivers else "",
        "explained_rows": (state.explain or {}).get("rows", 0),
        "explain_method": (state.explain or {}).get("method"),
        "written_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    return _render("run_report.html.j2", context)


def _drivers(store: Any, state: Any) -> list[dict[str, Any]]:
    """An explained day's mean |contribution| per feature beside the model's training reference."""
    from pipeline.explain import shift
    from pipeline.storage import model_prefix

    if not getattr(state, "explain", None):
        return []
    ref = None
    try:
        manifest = json.loads(store.get_bytes(f"{model_prefix(state.model_name, state.model_version)}/manifest.json"))
        ref = (manifest.get("reference") or {}).get("contributions")
    except Exception:  # a model without a manifest: the day's figures alone
        ref = None
    return shift(state.explain, ref)


# ---- a job over time -------------------------------------------------------------------------------


def job_report(settings: Settings, spec: JobSpec, first: date, last: date, path: Path) -> dict[str, Any]:
    """Write the HTML report of ``spec``'s days ``first``..``last`` to ``path``; return a small summary."""
    from pipeline.evaluate import history
    from pipeline.report_estimate import section as estimate_section
    from pipeline.report_kinds import performance

    eng = db.ready_engine(settings)
    with eng.connect() as conn:
        runs = [dict(r._mapping) for r in conn.execute(db.query("job_report_runs"), {"job": spec.name, "first": first, "last": last})]
        drift_rows = [
            dict(r._mapping) for r in conn.execute(db.query("job_report_drift"), {"job": spec.name, "first": first, "last": last})
        ]
    evaluations = history(eng, spec.name, first, last)
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    published = [r for r in runs if r["published_at"] is not None]
    context = {
        "title": f"{spec.name}: {first} to {last}",
        "spec": spec,
        "first": first,
        "last": last,
        "days": len(days),
        "runs": runs,
        "published": published,
        "failed_days": [r for r in runs if r["published_at"] is None],
        "evaluations": evaluations,
        "rows_svg": rows_plot(published, (first, last)) if published else "",
        "durations_svg": durations_plot(published, (first, last)) if published else "",
        "drift_svg": drift_heatmap(drift_rows, spec) if drift_rows else "",
        "perf": performance(evaluations, spec.model.kind, (first, last)),
        "estimate": estimate_section(eng, spec, first, last, evaluations),  # before labels, and its error since
        "written_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_render("job_report.html.j2", context))
    return {"days_published": len(published), "runs": len(runs), "evaluations": len(evaluations), "path": str(path)}


def _dates(rows: list[dict[str, Any]]) -> list[Any]:
    return [r["ds"] for r in rows]


def _date_axis(ax: Any, span: tuple[date, date] | None = None) -> None:
    """Dates on the x axis, read as days (``Nov 03``): the report's whole range (``span``), so that a day's
    place does not depend on which days have data, with at most about ten ticks, never hours (which a range
    of a few days, or a single day, would otherwise get, each labelled alike)."""
    import math

    import matplotlib.dates as mdates

    if span is not None:
        first, last = span
        ax.set_xlim(mdates.date2num(first) - 0.6, mdates.date2num(last) + 0.6)
    lo, hi = ax.get_xlim()
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%b %d"))
    ax.xaxis.set_major_locator(mdates.DayLocator(interval=max(1, math.ceil((hi - lo) / 10))))
    ax.xaxis.set_minor_locator(mdates.DayLocator())
    for label in ax.get_xticklabels():
        label.set_rotation(30)
        label.set_horizontalalignment("right")


def rows_plot(published: list[dict[str, Any]], span: tuple[date, date] | None = None) -> str:
    fig = _figure(7.0, 2.6)
    ax = fig.subplots()
    ds = _dates(published)
    ax.bar(ds, [r["rows_published"] or 0 for r in published], color="#1565c0", label="rows published")
    ax.set_ylabel("rows published", fontsize=8)
    ax2 = ax.twinx()
    share = [100.0 * (r["rows_quarantined"] or 0) / r["rows_extracted"] if r["rows_extracted"] else 0.0 for r in published]
    ax2.plot(ds, share, color="#ef6c00", marker="o", markersize=3, label="quarantined %")
    ax2.set_ylabel("quarantined %", fontsize=8)
    ax2.set_ylim(0, max([1.0, *[s * 1.3 for s in share]]))
    ax2.tick_params(labelsize=8)
    _date_axis(ax, span)
    _style(ax)
    return _svg(fig, "rows published and quarantine rate per day")


def durations_plot(published: list[dict[str, Any]], span: tuple[date, date] | None = None) -> str:
    fig = _figure(7.0, 2.6)
    ax = fig.subplots()
    ds = _dates(published)
    bottom = [0.0] * len(published)
    for stage, colour in zip(STAGES, STAGE_COLOURS, strict=True):
        vals = [float((r["stage_seconds"] or {}).get(stage) or 0.0) for r in published]
        if any(vals):
            ax.bar(ds, vals, bottom=bottom, color=colour, label=stage)
            bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax.set_ylabel("seconds", fontsize=8)
    ax.legend(fontsize=7, frameon=False, ncols=6, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    _date_axis(ax, span)
    _style(ax)
    return _svg(fig, "run duration per day by stage")


def drift_heatmap(rows: list[dict[str, Any]], spec: JobSpec) -> str:
    """Features × days, each cell the feature's worst metric as a share of its alert level, coloured by level."""
    from matplotlib.patches import Rectangle

    cells: dict[tuple[str, Any], dict[str, Any]] = {}
    for r in rows:
        limits = getattr(spec.drift, r["metric"], None)
        ratio = float(r["value"]) / (getattr(limits, "alert", None) or 1.0) if r["value"] is not None else 0.0
        key = (r["feature"], r["ds"])
        if key not in cells or ratio > cells[key]["ratio"]:
            cells[key] = {"ratio": ratio, "level": r["level"]}
    features = [*spec.feature_names, *OUTPUTS]
    features = [f for f in features if any(k[0] == f for k in cells)]
    days = sorted({k[1] for k in cells})
    fig = _figure(min(2.4 + 0.32 * len(days), 11.0), 0.3 * len(features) + 1.0)
    ax = fig.subplots()
    fill = {"ok": "#c8e6c9", "warn": LEVEL_COLOURS["warn"], "alert": LEVEL_COLOURS["alert"]}
    for (f, d), cell in cells.items():
        x, y = days.index(d), features.index(f)
        ax.add_patch(Rectangle((x - 0.5, y - 0.5), 1, 1, facecolor=fill.get(cell["level"], "#eeeeee"), edgecolor="white", linewidth=1.5))
        if cell["ratio"] >= 0.1:
            ink = "#1b5e20" if cell["level"] == "ok" else "white"
            ax.text(x, y, f"{cell['ratio']:.1f}", ha="center", va="center", fontsize=6, color=ink)
    ax.set_xlim(-0.5, len(days) - 0.5)
    ax.set_ylim(len(features) - 0.5, -0.5)
    ax.set_yticks(range(len(features)), features, fontsize=7)
    step = max(1, len(days) // 15)
    ax.set_xticks(range(0, len(days), step), [d.strftime("%b %d") for d in days[::step]], fontsize=7, rotation=45, ha="right")
    for side in ("top", "right", "left", "bottom"):
        ax.spines[side].set_visible(False)
    ax.tick_params(length=0)
    return _svg(fig, "drift per feature over time")


# ---- templates -------------------------------------------------------------------------------------


def _render(name: str, context: dict[str, Any]) -> str:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")), autoescape=True, undefined=jinja2.StrictUndefined
    )
    env.filters["num"] = lambda v, digits=0: "" if v is None else f"{v:,.{digits}f}"
    env.filters["json"] = lambda v: json.dumps(v, default=str)
    env.globals["colours"] = LEVEL_COLOURS
    env.globals["safe_svg"] = lambda s: jinja2.utils.markupsafe.Markup(s)
    return env.get_template(name).render(**context)
