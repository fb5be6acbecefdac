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
    for job, view in done.views.items():
        out.print(f"view of {job}: {view}", markup=False)


@friendly
def demo_data(
    start: str | None = typer.Option(None, help="first day (YYYY-MM-DD); default: 28 days before --end"),
    end: str | None = typer.Option(
        None, help="last day (YYYY-MM-DD); default: the latest complete day in the time zone of the churn job, which it feeds"
    ),
    customers: int = typer.Option(20_000, min=1, help="customers per day"),
) -> None:
    """Create the demo source table demo.customer_activity (deterministic per day), the source of the demo jobs churn, basket_value and plan_choice."""
    from pipeline.demo import PARQUET_PREFIX, load_demo_data
    from pipeline.quickstart import demo_days

    last = parse_ds(end, "--end") if end is not None else None
    first = parse_ds(start, "--start") if start else None
    s = settings()
    first, last = demo_days(s, first, last)
    res = load_demo_data(s, first, last, customers)
    out.print(
        f"demo.customer_activity: days {first}..{last}, {res['days_written']} written, {res['days_kept']} already there, {res['rows']:,} rows"
    )
    out.print(
        f"its Parquet export (plan_choice's source): {s.artifact_uri.rstrip('/')}/{PARQUET_PREFIX}/, {res['parquet_days']} day(s) written"
    )
    if res["days_replaced"]:
        out.print(
            f"{res['days_replaced']} day(s) had another number of customers (or were half-written) and were replaced "
            f"with {customers:,} customers each"
        )
    if res["days_completed"]:
        out.print(
            f"{res['days_completed']} day(s) were written before the basket_value and next_plan columns existed and were "
            "written again with them (the churn columns are unchanged)"
        )


@friendly
def quickstart(
    job: list[str] | None = typer.Option(
        None, "--job", help="a job to set up and score (repeatable); default: the demo jobs churn, basket_value and plan_choice"
    ),
    customers: int = typer.Option(20_000, min=1, help="customers per day of the demo data"),
) -> None:
    """Set up everything on the embedded defaults and score the latest complete day of each demo job (what `make run` does)."""
    import time

    from pipeline.kinds import headline
    from pipeline.quickstart import Quickstart

    started = time.perf_counter()
    qs = Quickstart(settings(), job or (), customers)
    with out.status("starting PostgreSQL and applying migrations…"):
        database = qs.start_database()
    out.print(f"[bold]database[/] {database}")
    step = time.perf_counter()
    with out.status("loading demo source data…"):
        res = qs.load_demo_data()
    first, last = qs.demo_window()
    out.print(
        f"[bold]source[/]   demo.customer_activity {first}..{last}: {res['rows']:,} rows "
        f"({res['days_written']} day(s) generated, {res['days_kept']} reused), exported as Parquet for plan_choice"
    )
    timings = [f"demo data {time.perf_counter() - step:.0f} s"]
    for spec in qs.specs:
        step = time.perf_counter()
        model = spec.model
        out.print(f"\n[bold]{spec.name}[/] ({spec.kind}): {spec.description}")
        if not qs.has_model(spec):
            with out.status(f"training {model.name}…"):
                tr = qs.train(spec)
            out.print(f"[bold]model[/]    trained {tr.model_name} v{tr.version} (holdout {headline(spec.kind, tr.metrics)}); {tr.reason}")
        else:
            out.print(f"[bold]model[/]    reusing {model.name}@{model.alias}")
        with out.status(f"scoring {spec.name} {qs.day(spec)}…"):
            state = qs.score(spec)
        print_run(state)
        out.print(f"[bold]artifacts[/] {qs.artifacts(state)}")
        if state.report_uri:
            out.print(f"[bold]report[/]   {qs.report_link(state)}")
        for i, query in enumerate(qs.first_queries(spec)):
            out.print("[bold]try[/]      " if i == 0 else "         ", Text(query), sep="")
        why = qs.explain_command(spec)
        if why:
            out.print("[bold]why[/]      ", Text(why), sep="")
        timings.append(f"{spec.name} {time.perf_counter() - step:.0f} s")
    out.print()
    out.print("[bold]psql[/]     ", Text(qs.psql_command()), sep="")
    if qs.password_in_url:
        out.print("         (the password is the one in NIGHTSCORE_DATABASE_URL; psql asks for it, or reads PGPASSWORD)")
    out.print(f"done in {time.perf_counter() - started:.0f} s ({', '.join(timings)})")


@friendly
def stop() -> None:
    """Stop the embedded PostgreSQL server (it is restarted on demand)."""
    from pipeline import db

    out.print("stopped the embedded PostgreSQL" if db.stop_embedded(settings().home) else "the embedded PostgreSQL was not running")
