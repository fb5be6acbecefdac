"""Models: ``train`` and the registry's ``model list``, ``model promote`` and ``model rollback``."""

from __future__ import annotations

import typer
from rich.table import Column, Table
from rich.text import Text

from pipeline.cli.common import BOX, friendly, out, print_json, ready, settings
from pipeline.errors import NightscoreError
from pipeline.jobs import parse_ds

PROMOTE = ("if_none", "if_better", "always", "never")


@friendly
def train(
    job: str = typer.Option(..., help="job name (a spec in the jobs folder)"),
    end: str | None = typer.Option(None, help="last holdout day (YYYY-MM-DD); default: the latest complete day in the job's time zone"),
    promote: str = typer.Option("if_none", help="if_none | if_better | always | never: when to point the alias at the new version"),
) -> None:
    """Train, evaluate on the held-out days and register a new model version."""
    from pipeline.jobs import load_job
    from pipeline.train import train_model

    if promote not in PROMOTE:
        raise NightscoreError(f"--promote {promote!r} is not one of if_none, if_better, always, never", where="--promote")
    s = settings()
    spec = load_job(s.jobs_dir, job)
    ready(s)  # a database that is down or not migrated is named before any work; dead runs reaped
    last = parse_ds(end, "--end") if end is not None else None  # None: train_model's default_day(spec.timezone)
    with out.status(f"training {spec.model.name} for job {job}…"):
        res = train_model(s, spec, end=last, promote=promote)  # type: ignore[arg-type]
    scores = f"AUC {res.metrics['auc']:.4f}, log loss {res.metrics['logloss']:.4f} on {res.metrics['holdout_rows']:,} held-out rows"
    out.print(f"registered {res.model_name} v{res.version}: {scores}" if res.registered else f"{res.model_name}: {scores}")
    out.print(Text(res.reason))


@friendly
def model_list(
    name: str | None = typer.Argument(None, help="model name; default: all"),
    as_json: bool = typer.Option(False, "--json", help="print the versions as JSON (for scripts)"),
) -> None:
    """List registered versions with their metrics and aliases."""
    from dataclasses import asdict

    from pipeline.catalog import model_versions

    versions = model_versions(ready(settings()), name)
    if as_json:
        print_json([{**asdict(mv), "aliases": aliases} for mv, aliases in versions])
        return
    table = Table(
        *(Column(h, no_wrap=True) for h in ("model", "v", "aliases", "AUC", "log loss", "trained on", "sha256")),
        box=BOX,
        pad_edge=False,
        collapse_padding=True,
    )
    for mv, aliases in versions:
        w = mv.training_window
        table.add_row(
            mv.name,
            str(mv.version),
            ", ".join(aliases),
            f"{mv.metrics.get('auc', float('nan')):.4f}",
            f"{mv.metrics.get('logloss', float('nan')):.4f}",
            f"{str(w.get('train_start'))[2:]}..{str(w.get('holdout_end'))[2:]}",
            mv.sha256[:8],
        )
    out.print(table, soft_wrap=False)


@friendly
def model_promote(name: str, version: int, alias: str = typer.Option("champion"), reason: str = typer.Option("manual promotion")) -> None:
    """Point ALIAS (default champion) at VERSION; takes effect for the next run."""
    from pipeline import registry

    prev = registry.set_alias(ready(settings()), name, alias, version, reason=reason)
    out.print(f"{name}@{alias}: v{prev} → v{version}" if prev else f"{name}@{alias}: v{version}")


@friendly
def model_rollback(name: str, alias: str = typer.Option("champion")) -> None:
    """Point ALIAS back at the version it had before its last change."""
    from pipeline import registry

    prev, now = registry.rollback(ready(settings()), name, alias)
    out.print(f"{name}@{alias}: v{now} → v{prev} (rolled back)")
