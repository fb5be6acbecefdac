"""The run ledger: ``runs`` (the reading is in :mod:`pipeline.ledger`; here only the rendering)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Column, Table
from rich.text import Text

from pipeline.cli.common import BOX, cut, friendly, out, print_json, settings

if TYPE_CHECKING:
    from pipeline.ledger import RunDetail

_COLOURS = {"succeeded": "green", "published": "green", "failed": "red", "abandoned": "red", "interrupted": "yellow"}


@friendly
def runs(
    job: str | None = typer.Option(None, help="only this job"),
    limit: int = typer.Option(20, min=1),
    as_json: bool = typer.Option(False, "--json", help="print the runs as JSON (for scripts)"),
    show: str | None = typer.Option(None, "--show", help="print one run's record and manifest (its id, or the start of it)"),
    reap: bool = typer.Option(False, "--reap", help="mark runs whose process is gone as abandoned and remove their leftovers"),
) -> None:
    """List recent scoring runs, or show one. Runs whose process is gone are reaped first."""
    from pipeline import ledger
    from pipeline import runs as runs_mod

    s = settings()
    eng, reaped = ledger.open_ledger(s)
    if reap:
        for r in reaped.runs:
            out.print(Text(f"run {r['run_id']} ({r['job']} {r['ds']}): {r['status']}: {r['error']}"))
        out.print(
            f"reaped {len(reaped.runs)} run(s); dropped {len(reaped.tables)} loading table(s); removed {len(reaped.folders)} work folder(s)"
        )
    elif show:
        _print_detail(ledger.run_detail(s, eng, show))
    elif as_json:
        print_json(runs_mod.recent(eng, job, limit))
    else:
        _print_runs(runs_mod.recent(eng, job, limit))


def _print_detail(detail: RunDetail) -> None:
    """One run: its record and manifest as JSON, then where its quarantined rows are."""
    from pipeline.hints import psql_line

    out.print_json(json.dumps(detail.to_dict(), default=str))
    quarantined = detail.record.get("rows_quarantined")
    if quarantined:
        out.print(Text(f"{quarantined:,} row(s) quarantined: {psql_line('run_quarantined_rows', run_id=detail.run_id)}"))


def _print_runs(recent: list[dict[str, Any]]) -> None:
    """The runs as a table that fits the terminal; their errors in a column, or below it when narrow."""
    room = out.width - 77  # what the other columns leave of the terminal's width
    with_errors = room >= 30 and any(r["error"] for r in recent)  # narrower: the errors go below the table
    table = Table(
        *(Column(h, no_wrap=True) for h in ("run", "job", "ds", "status", "model")),
        Column("rows", justify="right", no_wrap=True),
        Column("started", no_wrap=True),
        *([Column("error", no_wrap=True)] if with_errors else []),
        box=BOX,
        pad_edge=False,
        collapse_padding=True,
    )
    for r in recent:
        table.add_row(
            str(r["run_id"])[:8],
            r["job"],
            str(r["ds"]),
            Text(r["status"] + (" (dry)" if r["dry_run"] else ""), style=_COLOURS.get(r["status"], "")),
            f"v{r['model_version']}" if r["model_version"] else "",
            f"{r['rows_published'] if r['rows_published'] is not None else r['rows_extracted'] or 0:,}"
            + (f" ({r['rows_quarantined']:,} q)" if r["rows_quarantined"] else ""),
            r["started_at"].strftime("%m-%d %H:%M"),
            *([Text(cut(r["error"] or "", room))] if with_errors else []),
        )
    out.print(table, soft_wrap=False)
    if not with_errors:
        for r in recent:
            if r["error"]:
                out.print(Text(cut(f"{str(r['run_id'])[:8]}  {r['error']}", 2 * out.width - 10)), soft_wrap=False)
