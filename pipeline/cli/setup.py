"""Setting up: ``init``, ``demo-data``, ``quickstart`` and ``stop`` (the work is in :mod:`pipeline.quickstart`)."""

from __future__ import annotations

import typer
from rich.text import Text

from pipeline.cli.common import friendly, out, print_run, settings
from pipeline.jobs import parse_ds


@friendly
def init() -> None:
    """Apply the SQL migrations and create the artifact store (bucket or folder)."""
    from pipeline.quickstart import initialize

    done = initialize(settings())
    applied = f": {', '.join(done.applied)}" if done.applied else " (up to date)"
    out.print(f"database {done.database}: {len(done.applied)} migration(s) applied{applied}")
    out.print(f"artifacts: {done.artifacts}")


@friendly
def demo_data(
    start: str | None = typer.Option(None, help="first day (YYYY-MM-DD); default: 28 days before --end"),
    end: str | None = typer.Option(
        None, help="last day (YYYY-MM-DD); default: the latest complete day in the time zone of the churn job, which it feeds"
    ),
    customers: int = typer.Option(20_000, min=1, help="customers per day"),
) -> None:
    """Create the demo source table demo.customer_activity (deterministic per day)."""
    from pipeline.demo import load_demo_data
    from pipeline.quickstart import demo_days

    last = parse_ds(end, "--end") if end is not None else None
    first = parse_ds(start, "--start") if start else None
    s = settings()
    first, last = demo_days(s, first, last)
    res = load_demo_data(s, first, last, customers)
    out.print(
        f"demo.customer_activity: days {first}..{last}, {res['days_written']} written, {res['days_kept']} already there, {res['rows']:,} rows"
    )
    if res["days_replaced"]:
        out.print(
            f"{res['days_replaced']} day(s) had another number of customers (or were half-written) and were replaced "
            f"with {customers:,} customers each"
        )


@friendly
def quickstart(job: str = typer.Option("churn"), customers: int = typer.Option(20_000, min=1)) -> None:
    """Set up everything on the embedded defaults and score the latest complete day's demo partition (what `make run` does)."""
    from pipeline.quickstart import Quickstart

    qs = Quickstart(settings(), job, customers)
    with out.status("starting PostgreSQL and applying migrations…"):
        database = qs.start_database()
    out.print(f"[bold]database[/] {database}")
    with out.status("loading demo source data…"):
        res = qs.load_demo_data()
    out.print(
        f"[bold]source[/]   demo.customer_activity: {res['rows']:,} rows ({res['days_written']} day(s) generated, {res['days_kept']} reused)"
    )
    model = qs.spec.model
    if not qs.has_model():
        with out.status(f"training {model.name}…"):
            tr = qs.train()
        out.print(f"[bold]model[/]    trained {tr.model_name} v{tr.version} (holdout AUC {tr.metrics['auc']:.4f}); {tr.reason}")
    else:
        out.print(f"[bold]model[/]    reusing {model.name}@{model.alias}")
    with out.status(f"scoring {job} {qs.day}…"):
        state = qs.score()
    print_run(state)
    out.print(f"[bold]artifacts[/] {qs.artifacts(state)}")
    if state.report_uri:
        out.print(f"[bold]report[/]   {qs.report_link(state)}")
    out.print("[bold]psql[/]     ", Text(qs.psql_command()), sep="")
    if qs.password_in_url:
        out.print("         (the password is the one in NIGHTSCORE_DATABASE_URL; psql asks for it, or reads PGPASSWORD)")
    out.print(f"[bold]try[/]      {qs.first_query()}")


@friendly
def stop() -> None:
    """Stop the embedded PostgreSQL server (it is restarted on demand)."""
    from pipeline import db

    out.print("stopped the embedded PostgreSQL" if db.stop_embedded(settings().home) else "the embedded PostgreSQL was not running")
