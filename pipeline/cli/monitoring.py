"""Monitoring: ``evaluate``, ``estimate``, ``report`` and ``metrics`` (the day windows are in :mod:`pipeline.lookback`)."""

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


@friendly
def estimate(
    job: str = typer.Option(..., help="job name (a binary model with an evaluation block)"),
    ds: str | None = typer.Option(None, help="the published day to estimate (YYYY-MM-DD)"),
    start: str | None = typer.Option(None, help="the first day of a range (with --end): every published day in it"),
    end: str | None = typer.Option(None, help="the last day of the range"),
    as_json: bool = typer.Option(False, "--json", help="print the estimates as JSON"),
) -> None:
    """Estimate published days' AUC, precision, recall and confusion counts from their scores alone, before the
    outcomes arrive (recorded in performance_estimates; each run does it for the day it publishes). Trusted as
    far as the model is calibrated on its holdout; reconciled with the realized values once a day is evaluated."""
    from pipeline.errors import UsageError
    from pipeline.estimate import estimate_published
    from pipeline.jobs import load_job

    if ds is not None and start is None and end is None:
        first = last = parse_ds(ds, "--ds")
    elif ds is None and start is not None and end is not None:
        first, last = parse_ds(start, "--start"), parse_ds(end, "--end")
    else:
        raise UsageError("give one day or one range of days", where="--ds, --start, --end", fix="give --ds D, or --start D and --end D")
    if last < first:
        raise UsageError(f"--end {last} is before --start {first}", where="--end", fix="give an --end on or after --start")
    s = settings()
    spec = load_job(s.jobs_dir, job)
    ready(s)
    with out.status(f"estimating {job}…"):
        found = estimate_published(s, spec, first, last)
    if as_json:
        print_json([e.to_dict() for e in found])
        return
    if not found:
        out.print(f"{job}: no day from {first} to {last} is published")
    for e in found:
        out.print(Text(e.line(), style=_LEVEL_STYLES.get(e.level, "")))


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
