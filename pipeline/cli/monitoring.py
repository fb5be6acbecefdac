"""Monitoring: ``evaluate``, ``report`` and ``metrics`` (the day windows are in :mod:`pipeline.lookback`)."""

from __future__ import annotations

import sys

import typer
from rich.table import Table
from rich.text import Text

from pipeline.cli.common import friendly, out, print_json, ready, settings
from pipeline.jobs import parse_ds

_LEVEL_STYLES = {"alert": "red", "warn": "yellow", "insufficient": "yellow"}


@friendly
def evaluate(
    job: str = typer.Option(..., help="job name"),
    ds: str | None = typer.Option(None, help="the published day to evaluate (YYYY-MM-DD); default: every matured day not yet evaluated"),
    early: bool = typer.Option(False, "--early", help="evaluate --ds before its outcomes have matured (evaluation.mature_days)"),
    as_json: bool = typer.Option(False, "--json", help="print the evaluations as JSON"),
) -> None:
    """Compare published predictions with the outcomes that arrived since, beside the model's holdout metrics
    (recorded in the evaluations table): binary AUC, log loss, calibration, precision and recall; multiclass
    log loss, accuracy, macro F1 and the confusion matrix; regression RMSE, MAE, R², pinball loss and coverage."""
    from pipeline import lookback
    from pipeline.jobs import load_job
    from pipeline.schedule import job_today

    s = settings()
    spec = load_job(s.jobs_dir, job)
    ready(s)
    day = parse_ds(ds, "--ds") if ds else None
    today = job_today(spec.timezone)
    with out.status(f"evaluating {job}…"):
        found = lookback.evaluate(s, spec, day, early=early, today=today)
    if as_json:
        print_json([e.to_dict() for e in found])
        return
    window = lookback.matured_window(spec, today)
    if not found and window and spec.evaluation:
        out.print(
            f"{job}: nothing to evaluate: every published day from {window[0]} to {window[1]} (outcomes mature "
            f"{spec.evaluation.mature_days} days after a day) is evaluated already; a later day: --ds DAY --early"
        )
    for e in found:
        out.print(Text(e.line(), style=_LEVEL_STYLES.get(e.level, "")))
        if e.kind == "multiclass" and e.metrics.get("confusion"):
            out.print(_confusion(e.metrics))
        elif e.kind == "regression" and (e.metrics.get("residuals") or {}).get("mean") is not None:
            r = e.metrics["residuals"]
            out.print(f"  residuals (actual - predicted): mean {r['mean']:.4f}, standard deviation {r['sd']:.4f}")


def _confusion(metrics: dict) -> Table:
    """The day's confusion matrix: a row per actual class, a column per chosen class, and each class's recall."""
    classes = metrics["classes"]
    table = Table(title="actual (rows) by chosen class (columns)", title_justify="left", box=None, pad_edge=False)
    table.add_column("")
    for c in classes:
        table.add_column(c, justify="right")
    table.add_column("recall", justify="right")
    recall = metrics.get("recall") or {}
    for name, row in zip(classes, metrics["confusion"], strict=True):
        r = recall.get(name)
        table.add_row(name, *(f"{n:,}" for n in row), "n/a" if r is None else f"{r:.3f}")
    return table


@friendly
def report(
    job: str = typer.Option(..., help="job name"),
    days: int = typer.Option(
        30, min=1, max=3660, help="days with matured outcomes to show; the report reaches back this many plus evaluation.mature_days"
    ),
    end: str | None = typer.Option(None, help="the last day (YYYY-MM-DD); default: the latest complete day in the job's time zone"),
    output: str | None = typer.Option(None, "--out", help="the HTML file to write; default: <home>/reports/<job>-<end>-<days>d.html"),
) -> None:
    """Write one self-contained HTML report of a job over time: rows, quarantine rate, drift per feature,
    delayed-label metrics by the model's kind (a multiclass confusion matrix; regression predicted against
    actual and residuals) and run durations (open it in a browser, offline)."""
    from pathlib import Path

    from pipeline.jobs import load_job
    from pipeline.lookback import write_report

    s = settings()
    spec = load_job(s.jobs_dir, job)
    ready(s)
    last = parse_ds(end, "--end") if end is not None else None
    with out.status(f"writing the report of {job}…"):
        done = write_report(s, spec, days, last=last, path=Path(output) if output else None)
    span = (done.last - done.first).days + 1
    out.print(f"{job}: {done.summary['days_published']} published day(s) of {span} ({done.first} to {done.last}) in {done.path.resolve()}")
    if done.latest:
        out.print(f"{job}: {done.summary['evaluations']} evaluated day(s); {done.latest}")


@friendly
def metrics(job: str = typer.Option(..., help="job name")) -> None:
    """Print the job's metrics in OpenMetrics form, as runs push or write them (see docs/metrics.md)."""
    from pipeline import db
    from pipeline.jobs import load_job
    from pipeline.metrics import openmetrics

    s = settings()
    spec = load_job(s.jobs_dir, job)
    sys.stdout.write(openmetrics(db.ready_engine(s), job, spec))
