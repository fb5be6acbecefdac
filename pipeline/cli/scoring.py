"""Scoring: ``score`` (one day) and ``backfill`` (a range of days; the work is in :mod:`pipeline.backfill`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer
from rich.table import Column, Table
from rich.text import Text

from pipeline.cli.common import BOX, err, friendly, out, print_run, settings
from pipeline.config import Settings
from pipeline.errors import UsageError
from pipeline.jobs import parse_ds

if TYPE_CHECKING:
    from pipeline.backfill import DayResult
    from pipeline.run import RunState

_WORKERS_HELP = "worker processes for the shards; default: one per core"
_SHADOW_HELP = "a shadow model (alias or version; repeatable) scoring the same rows into shadow_predictions; default: model.shadow"


@friendly
def score(
    job: str = typer.Option(..., help="job name"),
    ds: str | None = typer.Option(None, help="partition day (YYYY-MM-DD); default: the latest complete day in the job's time zone"),
    model_version: int | None = typer.Option(None, "--model-version", min=1, help="pin a registered version instead of the job's alias"),
    dry_run: bool = typer.Option(False, "--dry-run", help="validate and score, publish nothing"),
    shards: str | None = typer.Option(
        None, "--shards", help="split the day into N shards (or auto: one per core); default: the job spec's"
    ),
    workers: int | None = typer.Option(None, "--workers", min=1, envvar="NIGHTSCORE_WORKERS", help=_WORKERS_HELP),
    shadow: list[str] | None = typer.Option(None, "--shadow", help=_SHADOW_HELP),
) -> None:
    """Score one (job, day) partition and publish it atomically (safe to rerun)."""
    from pipeline.jobs import load_job
    from pipeline.run import score_partition
    from pipeline.schedule import default_day
    from pipeline.shadow import parse_refs

    s = settings()
    spec = load_job(s.jobs_dir, job)
    complete = default_day(spec.timezone)
    day = parse_ds(ds, "--ds") if ds is not None else complete
    if day > complete:  # refused up front, as backfill does: no run is recorded for a day not over yet
        raise UsageError(
            f"--ds {day} is not a complete day yet in {spec.timezone} (the latest complete day is {complete})",
            where="--ds",
            fix=f"score {complete} or an earlier day; a day is scored once it is over",
        )
    n = _shard_count(shards)
    with _busy(f"scoring {job} {day}…", s, job, n):
        state = score_partition(
            s, job, day, model_version=model_version, dry_run=dry_run, shard_count=n, workers=workers, shadow=parse_refs(shadow)
        )
    print_run(state)
    print_shadows(s, state)


def print_shadows(s: Settings, state: RunState) -> None:
    """One line per shadow model of the run: its version, status and rows (why, when it failed)."""
    if state.dry_run:
        return
    from pipeline import db
    from pipeline.shadow import ledger

    for r in ledger(db.engine(s), state.run_id):
        which = f"{r['model_name']} v{r['model_version']}" if r["model_version"] else f"{r['model_name']} {r['requested']!r}"
        if r["status"] == "scored":
            out.print(f"  shadow {which}: {r['rows']:,} rows in shadow_predictions ({r['seconds'] or 0:.2f} s)")
        else:
            err.print(Text(f"  shadow {which}: {r['status']}: {r['error'] or r['note']}", style="yellow"), soft_wrap=True)


def _shard_count(value: str | None) -> int | None:
    """``--shards``: a whole number from 1 up, or ``auto`` (one per core)."""
    from pipeline import shards
    from pipeline.jobs import MAX_SHARDS

    if value is None:
        return None
    if value == "auto":
        return shards.resolve("auto")
    if value.isdigit() and 1 <= int(value) <= MAX_SHARDS:
        return int(value)
    raise UsageError(f"--shards {value!r} is not a shard count", where="--shards", fix=f"give a number from 1 to {MAX_SHARDS}, or auto")


@contextmanager
def _busy(message: str, s: Settings, job: str, shard_count: int | None) -> Iterator[None]:
    """A spinner while one shard runs here; a plain line when worker processes will be forked (a spinner
    is a thread, and no thread may run while this process forks)."""
    from pipeline import shards
    from pipeline.jobs import load_job

    n = shard_count or shards.resolve(load_job(s.jobs_dir, job).shards)
    if n == 1:
        with out.status(message):
            yield
    else:
        out.print(f"{message} ({n} shards)")
        yield


@friendly
def backfill(
    job: str = typer.Option(..., help="job name"),
    start: str = typer.Option(..., help="first day (YYYY-MM-DD)"),
    end: str = typer.Option(..., help="last day, inclusive (YYYY-MM-DD)"),
    model_version: int | None = typer.Option(None, "--model-version", min=1, help="pin a registered version"),
    dry_run: bool = typer.Option(False, "--dry-run"),
    shards: str | None = typer.Option(None, "--shards", help="split each day into N shards (or auto); default: the job spec's"),
    workers: int | None = typer.Option(None, "--workers", min=1, envvar="NIGHTSCORE_WORKERS", help=_WORKERS_HELP),
    shadow: list[str] | None = typer.Option(None, "--shadow", help=_SHADOW_HELP),
) -> None:
    """Score every day from --start to --end, one run per day; failed days are listed and the exit code is 1.

    Checked before any day runs: the job spec, the database, the model (alias or pinned version), and that
    no day is still in progress. Ends with a summary line per day."""
    from rich.progress import Progress

    from pipeline import backfill as bf
    from pipeline.shadow import parse_refs

    s = settings()
    n = _shard_count(shards)
    first, last = parse_ds(start, "--start"), parse_ds(end, "--end")
    plan = bf.plan(
        s, job, first, last, model_version=model_version, dry_run=dry_run, shard_count=n, workers=workers, shadow=parse_refs(shadow)
    )
    out.print(
        f"backfill {job}: {len(plan.days)} day(s) {first}..{last} with {plan.model.name} v{plan.model.version}"
        + (" (pinned)" if model_version else f" ({plan.spec.model.alias}, resolved at each day's start)")
        + (", dry run" if dry_run else "")
    )
    results: list[DayResult] = []
    # refreshed by hand, never by a thread: the shards' worker processes are forked from this one
    with Progress(console=out, transient=True, auto_refresh=False) as progress:
        task = progress.add_task(f"backfill {job}", total=len(plan.days))
        progress.refresh()
        for result in bf.run(s, plan):
            results.append(result)
            if result.state is not None:
                print_run(result.state)
            else:
                err.print(Text(f"{result.ds} failed: {result.error}", style="red"), soft_wrap=True)
            progress.advance(task)
            progress.refresh()
    out.print(_summary(results), soft_wrap=False)
    failed = [str(d) for d in bf.failed_days(results)]
    out.print(f"{len(plan.days) - len(failed)} of {len(plan.days)} day(s) scored" + (f"; failed: {', '.join(failed)}" if failed else ""))
    bf.raise_if_failed(plan, results)


def _summary(results: list[DayResult]) -> Table:
    """The backfill's table: one row per day."""
    table = Table(
        "ds", "result", Column("published", justify="right"), Column("quarantined", justify="right"), "run", box=BOX, pad_edge=False
    )
    for r in results:
        if r.state is not None:
            c = r.state.counts
            table.add_row(
                str(r.ds), Text("ok", style="green"), f"{c.get('published', 0):,}", f"{c.get('quarantined', 0):,}", r.state.run_id[:8]
            )
        else:
            table.add_row(str(r.ds), Text("failed", style="red"), "", "", "")
    return table
