"""The ``nightscore`` command (Typer + Rich)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from functools import wraps
from typing import Any

import click
import typer
from rich.box import SIMPLE_HEAD
from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

from pipeline.config import Settings, load_settings
from pipeline.errors import Interrupted, NightscoreError, explain, redact
from pipeline.jobs import parse_ds

app = typer.Typer(
    help="nightscore: extract, validate, score and publish one day of predictions at a time.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals may hold credentials
)
model_app = typer.Typer(help="The model registry: versions and aliases.", no_args_is_help=True)
app.add_typer(model_app, name="model")
out = Console(soft_wrap=True)  # the terminal's width; piped: COLUMNS, else 80
err = Console(stderr=True)
_BOX = SIMPLE_HEAD  # fewer rules: tables fit 80 columns


def _settings() -> Settings:
    return load_settings()


_DEBUG = {"on": False}


def _print_version(value: bool) -> None:
    if value:
        import pipeline

        out.print(f"nightscore {pipeline.__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    debug: bool = typer.Option(False, "--debug", envvar="NIGHTSCORE_DEBUG", help="on an error, print the traceback too"),
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True, help="print the version and exit"),
) -> None:
    _DEBUG["on"] = debug


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _json(data: Any) -> None:
    """Machine-readable output for scripts: plain JSON on stdout, nothing else."""
    sys.stdout.write(json.dumps(data, default=str, indent=2) + "\n")


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn every error into one paragraph (what, where, fix) and a non-zero exit code.

    The traceback goes to the log file (``$NIGHTSCORE_HOME/logs/nightscore.log``) and, with ``--debug``, to the terminal."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _setup_logging()
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, click.exceptions.ClickException):  # the command's own exit or usage error
            raise
        except (Interrupted, KeyboardInterrupt) as exc:
            name = getattr(exc, "signal_name", "SIGINT")
            _fail(f"interrupted by {name}; a run in progress was recorded as interrupted and the published data is unchanged.", exc)
            raise typer.Exit(143 if name == "SIGTERM" else 130) from None
        except Exception as exc:
            _fail(f"error: {explain(exc)}", exc)
            raise typer.Exit(1) from None

    return wrapper


def _setup_logging() -> None:
    """Warnings to the terminal; everything from INFO up, tracebacks included, to ``$NIGHTSCORE_HOME/logs/nightscore.log``."""
    from pipeline.logsetup import setup_logging

    file = setup_logging()
    if file is not None and file not in _ERRORS.handlers:
        _ERRORS.addHandler(file)


_ERRORS = logging.getLogger("nightscore.errors")
_ERRORS.propagate = False  # tracebacks go to the log file only (and to the terminal with --debug)


def _fail(message: str, exc: BaseException) -> None:
    import traceback

    detail = redact("".join(traceback.format_exception(exc)))
    _ERRORS.error("%s\n%s", message, detail)
    if _DEBUG["on"]:
        err.print(Text(detail, style="dim"))
    err.print(Text(message, style="bold red"), soft_wrap=True)


def _ready(s: Settings) -> Any:
    """The database engine, migrated, after reaping runs whose process is gone (every command that uses the
    database does, so a killed run never stays ``running`` for long)."""
    from pipeline import db
    from pipeline.reap import reap_quietly

    eng = db.ready_engine(s)
    reap_quietly(s, eng)
    return eng


def _yesterday() -> date:
    return date.today() - timedelta(days=1)


def _day(value: str | None, where: str) -> date:
    return _yesterday() if value is None else parse_ds(value, where)


@app.command()
@friendly
def init() -> None:
    """Apply the SQL migrations and create the artifact store (bucket or folder)."""
    from pipeline import db
    from pipeline.storage import open_store

    s = _settings()
    applied = db.migrate(db.engine(s))
    store = open_store(s)
    if hasattr(store, "ensure_bucket"):
        store.ensure_bucket()
    out.print(
        f"database {db.safe_url(db.database_url(s))}: {len(applied)} migration(s) applied{': ' + ', '.join(applied) if applied else ' (up to date)'}"
    )
    out.print(f"artifacts: {store.root_uri}")


@app.command("demo-data")
@friendly
def demo_data(
    start: str | None = typer.Option(None, help="first day (YYYY-MM-DD); default: 28 days before --end"),
    end: str | None = typer.Option(None, help="last day (YYYY-MM-DD); default: yesterday"),
    customers: int = typer.Option(20_000, min=1, help="customers per day"),
) -> None:
    """Create the demo source table demo.customer_activity (deterministic per day)."""
    from pipeline.demo import load_demo_data

    last = _day(end, "--end")
    first = parse_ds(start, "--start") if start else last - timedelta(days=27)
    if first > last:
        raise NightscoreError(f"--start {first} is after --end {last}", fix="swap them")
    res = load_demo_data(_settings(), first, last, customers)
    out.print(
        f"demo.customer_activity: days {first}..{last}, {res['days_written']} written, {res['days_kept']} already there, {res['rows']:,} rows"
    )
    if res["days_replaced"]:
        out.print(
            f"{res['days_replaced']} day(s) had another number of customers (or were half-written) and were replaced "
            f"with {customers:,} customers each"
        )


@app.command()
@friendly
def train(
    job: str = typer.Option(..., help="job name (a spec in the jobs folder)"),
    end: str | None = typer.Option(None, help="last holdout day (YYYY-MM-DD); default: yesterday"),
    promote: str = typer.Option("if_none", help="if_none | if_better | always | never: when to point the alias at the new version"),
) -> None:
    """Train, evaluate on the held-out days and register a new model version."""
    from pipeline.jobs import load_job
    from pipeline.train import train_model

    if promote not in ("if_none", "if_better", "always", "never"):
        raise NightscoreError(f"--promote {promote!r} is not one of if_none, if_better, always, never", where="--promote")

    s = _settings()
    spec = load_job(s.jobs_dir, job)
    _ready(s)  # a database that is down or not migrated is named before any work; dead runs reaped
    with out.status(f"training {spec.model.name} for job {job}…"):
        res = train_model(s, spec, end=_day(end, "--end"), promote=promote)  # type: ignore[arg-type]
    scores = f"AUC {res.metrics['auc']:.4f}, log loss {res.metrics['logloss']:.4f} on {res.metrics['holdout_rows']:,} held-out rows"
    if res.registered:
        out.print(f"registered {res.model_name} v{res.version}: {scores}")
    else:
        out.print(f"{res.model_name}: {scores}")
    out.print(Text(res.reason))


def _print_run(state: Any) -> None:
    c = state.counts
    out.print(
        f"run {state.run_id} {state.job} {state.ds}: extracted {c.get('extracted', 0):,}, valid {c.get('valid', 0):,}, "
        f"quarantined {c.get('quarantined', 0):,}, scored {c.get('scored', 0):,}, published {c.get('published', 0):,} "
        f"with {state.model_name} v{state.model_version}" + (" (dry run)" if state.dry_run else "")
    )


@app.command()
@friendly
def score(
    job: str = typer.Option(..., help="job name"),
    ds: str | None = typer.Option(None, help="partition day (YYYY-MM-DD); default: yesterday"),
    model_version: int | None = typer.Option(None, "--model-version", min=1, help="pin a registered version instead of the job's alias"),
    dry_run: bool = typer.Option(False, "--dry-run", help="validate and score, publish nothing"),
    shards: str | None = typer.Option(
        None, "--shards", help="split the day into N shards (or auto: one per core); default: the job spec's"
    ),
    workers: int | None = typer.Option(
        None, "--workers", min=1, envvar="NIGHTSCORE_WORKERS", help="worker processes for the shards; default: one per core"
    ),
) -> None:
    """Score one (job, day) partition and publish it atomically (safe to rerun)."""
    from pipeline.run import score_partition

    s = _settings()
    day = _day(ds, "--ds")
    n = _shard_count(shards)
    with _busy(f"scoring {job} {day}…", s, job, n):
        state = score_partition(s, job, day, model_version=model_version, dry_run=dry_run, shard_count=n, workers=workers)
    _print_run(state)


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
    raise NightscoreError(
        f"--shards {value!r} is not a shard count", where="--shards", fix=f"give a number from 1 to {MAX_SHARDS}, or auto"
    )


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


@app.command()
@friendly
def backfill(
    job: str = typer.Option(..., help="job name"),
    start: str = typer.Option(..., help="first day (YYYY-MM-DD)"),
    end: str = typer.Option(..., help="last day, inclusive (YYYY-MM-DD)"),
    model_version: int | None = typer.Option(None, "--model-version", min=1, help="pin a registered version"),
    dry_run: bool = typer.Option(False, "--dry-run"),
    shards: str | None = typer.Option(None, "--shards", help="split each day into N shards (or auto); default: the job spec's"),
    workers: int | None = typer.Option(
        None, "--workers", min=1, envvar="NIGHTSCORE_WORKERS", help="worker processes for the shards; default: one per core"
    ),
) -> None:
    """Score every day from --start to --end, one run per day; failed days are listed and the exit code is 1.

    Checked before any day runs: the job spec, the database, the model (alias or pinned version), and that
    no day is still in progress. Ends with a summary line per day."""
    from datetime import UTC, datetime

    from rich.progress import Progress

    from pipeline import registry
    from pipeline.jobs import load_job
    from pipeline.run import score_partition
    from pipeline.schedule import latest_complete_day

    s = _settings()
    n = _shard_count(shards)
    first, last = parse_ds(start, "--start"), parse_ds(end, "--end")
    if first > last:
        raise NightscoreError(f"--start {first} is after --end {last}", fix="swap them")
    spec = load_job(s.jobs_dir, job)
    complete = latest_complete_day(datetime.now(UTC), spec.timezone)
    if last > complete:
        raise NightscoreError(
            f"--end {last} is not a complete day yet in {spec.timezone} (the latest is {complete})",
            where="--end",
            fix=f"end the backfill at {complete} or earlier",
        )
    mv = registry.resolve(_ready(s), spec.model.name, spec.model.alias, model_version)
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    out.print(
        f"backfill {job}: {len(days)} day(s) {first}..{last} with {mv.name} v{mv.version}"
        + (" (pinned)" if model_version else f" ({spec.model.alias}, resolved at each day's start)")
        + (", dry run" if dry_run else "")
    )
    results: list[tuple[date, str, Any]] = []
    # refreshed by hand, never by a thread: the shards' worker processes are forked from this one
    with Progress(console=out, transient=True, auto_refresh=False) as progress:
        task = progress.add_task(f"backfill {job}", total=len(days))
        progress.refresh()
        for d in days:
            try:
                state = score_partition(s, job, d, model_version=model_version, dry_run=dry_run, shard_count=n, workers=workers)
                results.append((d, "ok", state))
                _print_run(state)
            except NightscoreError as exc:
                results.append((d, "failed", exc))
                err.print(Text(f"{d} failed: {exc}", style="red"), soft_wrap=True)
            progress.advance(task)
            progress.refresh()
    table = Table(
        "ds", "result", Column("published", justify="right"), Column("quarantined", justify="right"), "run", box=_BOX, pad_edge=False
    )
    for d, result, value in results:
        if result == "ok":
            c = value.counts
            table.add_row(str(d), Text("ok", style="green"), f"{c.get('published', 0):,}", f"{c.get('quarantined', 0):,}", value.run_id[:8])
        else:
            table.add_row(str(d), Text("failed", style="red"), "", "", "")
    out.print(table, soft_wrap=False)
    failed = [str(d) for d, result, _ in results if result != "ok"]
    out.print(f"{len(days) - len(failed)} of {len(days)} day(s) scored" + (f"; failed: {', '.join(failed)}" if failed else ""))
    if failed:
        raise NightscoreError(
            f"{len(failed)} of {len(days)} day(s) failed ({', '.join(failed)})",
            fix="each day's error is printed above it (and in `nightscore runs`); rerun those days once fixed, "
            "with `nightscore score --job {job} --ds <day>` or a backfill over them".replace("{job}", job),
        )


@app.command()
@friendly
def runs(
    job: str | None = typer.Option(None, help="only this job"),
    limit: int = typer.Option(20, min=1),
    as_json: bool = typer.Option(False, "--json", help="print the runs as JSON (for scripts)"),
    show: str | None = typer.Option(None, "--show", help="print one run's record and manifest (its id, or the start of it)"),
    reap: bool = typer.Option(False, "--reap", help="mark runs whose process is gone as abandoned and remove their leftovers"),
) -> None:
    """List recent scoring runs, or show one. Runs whose process is gone are reaped first."""
    from pipeline import db
    from pipeline import runs as runs_mod
    from pipeline.reap import reap as reap_runs
    from pipeline.storage import open_store

    s = _settings()
    eng = db.ready_engine(s)
    reaped = reap_runs(s, eng)
    if reap:
        for r in reaped.runs:
            out.print(Text(f"run {r['run_id']} ({r['job']} {r['ds']}): {r['status']}: {r['error']}"))
        out.print(
            f"reaped {len(reaped.runs)} run(s); dropped {len(reaped.tables)} loading table(s); removed {len(reaped.folders)} work folder(s)"
        )
        return
    if show:
        run_id = runs_mod.find(eng, show)
        rec = runs_mod.get(eng, run_id)
        assert rec is not None
        manifest = None
        if rec.get("manifest_uri"):
            store = open_store(s)
            try:
                manifest = json.loads(store.get_bytes(store.key(rec["manifest_uri"])))
            except NightscoreError as exc:
                manifest = {"unreadable": str(exc)}
        reports = {
            "artifacts": rec.get("artifacts_uri"),
            "validation_result": rec.get("validation_report_uri"),
            "data_docs": rec.get("data_docs_uri"),
            "manifest": rec.get("manifest_uri"),
            "report": (manifest or {}).get("report_uri"),
        }
        shard_rows = runs_mod.shards(eng, run_id)
        out.print_json(json.dumps({"reports": reports, "run": rec, "shards": shard_rows, "manifest": manifest}, default=str))
        if rec.get("rows_quarantined"):
            out.print(
                Text(
                    f"{rec['rows_quarantined']:,} row(s) quarantined: "
                    f"SELECT entity_id, reasons, row_values FROM quarantined_rows WHERE run_id = '{run_id}';"
                )
            )
        return
    recent = runs_mod.recent(eng, job, limit)
    if as_json:
        _json(recent)
        return
    colours = {"succeeded": "green", "published": "green", "failed": "red", "abandoned": "red", "interrupted": "yellow"}
    room = out.width - 77  # what the other columns leave of the terminal's width
    with_errors = room >= 30 and any(r["error"] for r in recent)  # narrower: the errors go below the table
    table = Table(
        *(Column(h, no_wrap=True) for h in ("run", "job", "ds", "status", "model")),
        Column("rows", justify="right", no_wrap=True),
        Column("started", no_wrap=True),
        *([Column("error", no_wrap=True)] if with_errors else []),
        box=_BOX,
        pad_edge=False,
        collapse_padding=True,
    )
    for r in recent:
        table.add_row(
            str(r["run_id"])[:8],
            r["job"],
            str(r["ds"]),
            Text(r["status"] + (" (dry)" if r["dry_run"] else ""), style=colours.get(r["status"], "")),
            f"v{r['model_version']}" if r["model_version"] else "",
            f"{r['rows_published'] if r['rows_published'] is not None else r['rows_extracted'] or 0:,}"
            + (f" ({r['rows_quarantined']:,} q)" if r["rows_quarantined"] else ""),
            r["started_at"].strftime("%m-%d %H:%M"),
            *([Text(_cut(r["error"] or "", room))] if with_errors else []),
        )
    out.print(table, soft_wrap=False)
    if not with_errors:
        for r in recent:
            if r["error"]:
                out.print(Text(_cut(f"{str(r['run_id'])[:8]}  {r['error']}", 2 * out.width - 10)), soft_wrap=False)


@app.command()
@friendly
def evaluate(
    job: str = typer.Option(..., help="job name"),
    ds: str | None = typer.Option(None, help="the published day to evaluate (YYYY-MM-DD); default: every matured day not yet evaluated"),
    early: bool = typer.Option(False, "--early", help="evaluate --ds before its outcomes have matured (evaluation.mature_days)"),
    as_json: bool = typer.Option(False, "--json", help="print the evaluations as JSON"),
) -> None:
    """Compare published predictions with the outcomes that arrived since: AUC, log loss, calibration,
    precision and recall, beside the model's holdout metrics (recorded in the evaluations table)."""
    from pipeline.evaluate import evaluate_day, evaluate_matured
    from pipeline.jobs import load_job

    s = _settings()
    spec = load_job(s.jobs_dir, job)
    _ready(s)
    with out.status(f"evaluating {job}…"):
        found = [evaluate_day(s, spec, _day(ds, "--ds"), early=early)] if ds else evaluate_matured(s, spec, date.today())
    if as_json:
        _json([e.to_dict() for e in found])
        return
    if not found and spec.evaluation:
        last = date.today() - timedelta(days=spec.evaluation.mature_days)
        first = last - timedelta(days=spec.evaluation.lookback_days - 1)
        out.print(
            f"{job}: nothing to evaluate: every published day from {first} to {last} (outcomes mature {spec.evaluation.mature_days} days "
            "after a day) is evaluated already; a later day: --ds DAY --early"
        )
    for e in found:
        style = {"alert": "red", "warn": "yellow", "insufficient": "yellow"}.get(e.level, "")
        out.print(Text(e.line(), style=style))


@app.command()
@friendly
def report(
    job: str = typer.Option(..., help="job name"),
    days: int = typer.Option(30, min=1, max=3660, help="how many days, ending --end"),
    end: str | None = typer.Option(None, help="the last day (YYYY-MM-DD); default: yesterday"),
    output: str | None = typer.Option(None, "--out", help="the HTML file to write; default: <home>/reports/<job>-<end>-<days>d.html"),
) -> None:
    """Write one self-contained HTML report of a job over time: rows, quarantine rate, drift per feature,
    delayed-label metrics and run durations (open it in a browser, offline)."""
    from pathlib import Path

    from pipeline.jobs import load_job
    from pipeline.report import job_report

    s = _settings()
    spec = load_job(s.jobs_dir, job)
    _ready(s)
    last = _day(end, "--end")
    path = Path(output) if output else s.home / "reports" / f"{job}-{last}-{days}d.html"
    with out.status(f"writing the report of {job}…"):
        summary = job_report(s, spec, last - timedelta(days=days - 1), last, path)
    out.print(f"{job}: {summary['days_published']} published day(s) of {days} in {path.resolve()}")


@app.command()
@friendly
def metrics(job: str = typer.Option(..., help="job name")) -> None:
    """Print the job's metrics in OpenMetrics form, as runs push or write them (see README, "Metrics for Prometheus")."""
    from pipeline import db
    from pipeline.jobs import load_job
    from pipeline.metrics import openmetrics

    s = _settings()
    load_job(s.jobs_dir, job)
    sys.stdout.write(openmetrics(db.ready_engine(s), job))


@app.command()
@friendly
def jobs(
    check: list[str] = typer.Option(None, "--check", help="check this spec file (repeatable) without running anything"),
    as_json: bool = typer.Option(False, "--json", help="print the jobs as JSON (for scripts)"),
) -> None:
    """List the jobs in the jobs folder (each spec is checked as it loads), or check spec files."""
    from pathlib import Path

    from pipeline.jobs import load_spec, spec_files

    s = _settings()
    paths = [Path(c) for c in check] if check else spec_files(s.jobs_dir)
    if not paths:
        raise NightscoreError("no job specs found", where=str(s.jobs_dir), fix="add a <job>.yml there or set NIGHTSCORE_JOBS_DIR")
    specs, errors = [], []
    for path in paths:
        if not path.is_file():
            errors.append(f"{path}: no such file")
            continue
        try:
            specs.append(load_spec(path))
        except NightscoreError as exc:
            errors.append(str(exc))
    rows = [
        {
            "job": sp.name,
            "schedule": f"{sp.schedule} {sp.timezone}",
            "model": f"{sp.model.name}@{sp.model.alias}",
            "features": len(sp.features),
            "owner": sp.owner,
            "spec": str(sp.spec_path),
        }
        for sp in specs
    ]
    if as_json:
        _json({"jobs": rows, "errors": errors})
    else:
        table = Table("job", "schedule", "model", "features", "owner", box=_BOX)
        for r in rows:
            table.add_row(*(str(r[k]) for k in ("job", "schedule", "model", "features", "owner")))
        if rows:
            out.print(table, soft_wrap=False)
        for e in errors:
            err.print(Text(f"error: {e}", style="bold red"), soft_wrap=True)
    if errors:
        raise typer.Exit(1)
    if check and not as_json:
        out.print(f"{len(rows)} spec(s) valid")


@model_app.command("list")
@friendly
def model_list(
    name: str | None = typer.Argument(None, help="model name; default: all"),
    as_json: bool = typer.Option(False, "--json", help="print the versions as JSON (for scripts)"),
) -> None:
    """List registered versions with their metrics and aliases."""
    from dataclasses import asdict

    from pipeline import registry

    eng = _ready(_settings())
    if name is not None:
        registry.require_model(eng, name)
    al = registry.aliases(eng, name)
    if as_json:
        _json(
            [
                {**asdict(mv), "aliases": [a for (m, a), v in al.items() if m == mv.name and v == mv.version]}
                for mv in registry.list_versions(eng, name)
            ]
        )
        return
    table = Table(
        *(Column(h, no_wrap=True) for h in ("model", "v", "aliases", "AUC", "log loss", "trained on", "sha256")),
        box=_BOX,
        pad_edge=False,
        collapse_padding=True,
    )
    for mv in registry.list_versions(eng, name):
        tags = ", ".join(a for (m, a), v in al.items() if m == mv.name and v == mv.version)
        w = mv.training_window
        table.add_row(
            mv.name,
            str(mv.version),
            tags,
            f"{mv.metrics.get('auc', float('nan')):.4f}",
            f"{mv.metrics.get('logloss', float('nan')):.4f}",
            f"{str(w.get('train_start'))[2:]}..{str(w.get('holdout_end'))[2:]}",
            mv.sha256[:8],
        )
    out.print(table, soft_wrap=False)


@model_app.command("promote")
@friendly
def model_promote(name: str, version: int, alias: str = typer.Option("champion"), reason: str = typer.Option("manual promotion")) -> None:
    """Point ALIAS (default champion) at VERSION; takes effect for the next run."""
    from pipeline import registry

    prev = registry.set_alias(_ready(_settings()), name, alias, version, reason=reason)
    out.print(f"{name}@{alias}: v{prev} → v{version}" if prev else f"{name}@{alias}: v{version}")


@model_app.command("rollback")
@friendly
def model_rollback(name: str, alias: str = typer.Option("champion")) -> None:
    """Point ALIAS back at the version it had before its last change."""
    from pipeline import registry

    eng = _ready(_settings())
    prev, now = registry.rollback(eng, name, alias)
    out.print(f"{name}@{alias}: v{now} → v{prev} (rolled back)")


@app.command()
@friendly
def quickstart(job: str = typer.Option("churn"), customers: int = typer.Option(20_000, min=1)) -> None:
    """Set up everything on the embedded defaults and score yesterday's demo partition (what `make run` does)."""
    from sqlalchemy.engine import make_url

    from pipeline import db, registry
    from pipeline.demo import load_demo_data
    from pipeline.jobs import load_job
    from pipeline.run import score_partition
    from pipeline.storage import open_store
    from pipeline.train import train_model

    s = _settings()
    spec = load_job(s.jobs_dir, job)
    y = _yesterday()
    with out.status("starting PostgreSQL and applying migrations…"):
        url = db.database_url(s)
        eng = db.ready_engine(s)
        store = open_store(s)
    out.print(f"[bold]database[/] {db.safe_url(url)}")
    with out.status("loading demo source data…"):
        res = load_demo_data(s, y - timedelta(days=spec.training.train_days + spec.training.holdout_days), y, customers)
    out.print(
        f"[bold]source[/]   demo.customer_activity: {res['rows']:,} rows ({res['days_written']} day(s) generated, {res['days_kept']} reused)"
    )
    if (spec.model.name, spec.model.alias) not in registry.aliases(eng, spec.model.name):
        with out.status(f"training {spec.model.name}…"):
            tr = train_model(s, spec, end=y - timedelta(days=1))
        out.print(f"[bold]model[/]    trained {tr.model_name} v{tr.version} (holdout AUC {tr.metrics['auc']:.4f}); {tr.reason}")
    else:
        out.print(f"[bold]model[/]    reusing {spec.model.name}@{spec.model.alias}")
    with out.status(f"scoring {job} {y}…"):
        state = score_partition(s, job, y)
    _print_run(state)
    out.print(f"[bold]artifacts[/] {store.uri(state.prefix)}")
    if state.report_uri:
        out.print(f"[bold]report[/]   {store.link(store.key(state.report_uri))}")
    out.print(
        "[bold]psql[/]     ",
        Text(f"psql '{db.libpq_uri(make_url(url)._replace(password=None).render_as_string(hide_password=False))}'"),
        sep="",
    )
    if make_url(url).password:
        out.print("         (the password is the one in NIGHTSCORE_DATABASE_URL; psql asks for it, or reads PGPASSWORD)")
    out.print(
        "[bold]try[/]      SELECT label, count(*), round(avg(score)::numeric, 3) FROM predictions "
        f"WHERE job = '{job}' AND ds = '{y}' GROUP BY label;"
    )


@app.command()
@friendly
def stop() -> None:
    """Stop the embedded PostgreSQL server (it is restarted on demand)."""
    from pipeline import db

    s = _settings()
    out.print("stopped the embedded PostgreSQL" if db.stop_embedded(s.home) else "the embedded PostgreSQL was not running")


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
