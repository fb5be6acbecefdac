"""``explain``: one published row's reasons (:mod:`pipeline.explain`)."""

from __future__ import annotations

import typer
from rich.table import Table

from pipeline.cli.common import BOX, friendly, out, print_json, ready, settings
from pipeline.jobs import parse_ds


@friendly
def explain(
    job: str = typer.Option(..., help="job name"),
    ds: str = typer.Option(..., help="the published day (YYYY-MM-DD)"),
    entity: str = typer.Option(..., help="the row's key: 42, or store_id=8,customer_id=7 for a key of several columns"),
    as_json: bool = typer.Option(False, "--json", help="print the row and its reasons as JSON"),
) -> None:
    """Why a published row scored what it did: its top features by contribution (XGBoost's own, in the model's
    margin: log-odds for classifiers), each with the row's value, the base value and the rest, which add up to
    the row's margin. The job's spec needs an explain section (docs/explanations.md)."""
    from dataclasses import asdict

    from pipeline.explain import row_reasons
    from pipeline.jobs import load_job

    s = settings()
    spec = load_job(s.jobs_dir, job)
    r = row_reasons(ready(s), spec, parse_ds(ds, "--ds"), entity)
    if as_json:
        print_json({**asdict(r), "margin": r.margin})
        return
    what = f" (explaining class {r.explained_class})" if r.explained_class else ""
    out.print(f"{job} {ds} {r.entity_id}: score {r.score:.6g}, label {r.label}, {r.model_name} v{r.model_version}{what}")
    table = Table(box=BOX)
    table.add_column("feature")
    table.add_column("value", justify="right")
    table.add_column("contribution", justify="right")
    for reason in r.reasons:
        table.add_row(reason["feature"], str(reason["value"]), f"{float(reason['contribution']):+.4f}")
    table.add_row("(other features)", "", f"{r.rest:+.4f}")
    table.add_row("(base value)", "", f"{r.base_value:+.4f}")
    table.add_row("= margin", "", f"{r.margin:+.4f}")
    out.print(table)
