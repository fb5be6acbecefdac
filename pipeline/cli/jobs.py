"""Job specs: ``jobs`` (the loading and checking is in :mod:`pipeline.catalog`)."""

from __future__ import annotations

import typer
from rich.table import Table
from rich.text import Text

from pipeline.cli.common import BOX, err, friendly, out, print_json, settings

_COLUMNS = ("job", "schedule", "model", "kind", "features")  # the key, source, owner and spec path: --json


@friendly
def jobs(
    check: list[str] = typer.Option(None, "--check", help="check this spec file (repeatable) without running anything"),
    as_json: bool = typer.Option(False, "--json", help="print the jobs as JSON (for scripts)"),
) -> None:
    """List the jobs in the jobs folder (each spec is checked as it loads), or check spec files."""
    from pipeline.catalog import check_specs

    found = check_specs(settings(), check)
    if as_json:
        print_json({"jobs": found.rows, "errors": found.errors})
    else:
        table = Table(*_COLUMNS, box=BOX)
        for r in found.rows:
            table.add_row(*(str(r[k]) for k in _COLUMNS))
        if found.rows:
            out.print(table, soft_wrap=False)
        for e in found.errors:
            err.print(Text(f"error: {e}", style="bold red"), soft_wrap=True)
    if found.errors:
        raise typer.Exit(1)
    if check and not as_json:
        out.print(f"{len(found.rows)} spec(s) valid")
