"""Models: ``train`` and the registry's ``model register``, ``model list``, ``model promote`` and ``model rollback``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Column, Table
from rich.text import Text

from pipeline.cli.common import BOX, cut, err, friendly, out, print_json, ready, settings
from pipeline.errors import UsageError
from pipeline.jobs import parse_ds

if TYPE_CHECKING:
    from pipeline.jobs import JobSpec
    from pipeline.registry import ModelVersion

PROMOTE = ("if_none", "if_better", "always", "never")


@friendly
def train(
    job: str = typer.Option(..., help="job name (a spec in the jobs folder)"),
    end: str | None = typer.Option(
        None, help="last holdout day (YYYY-MM-DD); default: the latest day whose labels have matured (evaluation.mature_days before today)"
    ),
    promote: str = typer.Option("if_none", help="if_none | if_better | always | never: when to point the alias at the new version"),
    allow_immature_labels: bool = typer.Option(
        False, "--allow-immature-labels", help="accept an --end whose labels have not matured (a source whose labels are final at once)"
    ),
) -> None:
    """Train, evaluate on the held-out days and register a new model version."""
    from pipeline.jobs import load_job
    from pipeline.kinds import headline
    from pipeline.train import train_model

    if promote not in PROMOTE:
        raise UsageError(
            f"--promote {promote!r} is not one of if_none, if_better, always, never",
            where="--promote",
            fix="if_none (promote only when there is no champion), if_better, always or never",
        )
    s = settings()
    spec = load_job(s.jobs_dir, job)
    ready(s)  # a database that is down or not migrated is named before any work; dead runs reaped
    last = parse_ds(end, "--end") if end is not None else None  # None: train_model's matured_until(spec)
    with out.status(f"training {spec.model.name} for job {job}…"):
        res = train_model(s, spec, end=last, promote=promote, allow_immature=allow_immature_labels)  # type: ignore[arg-type]
    w = res.window or {}
    if w:
        out.print(
            f"window: train {w['train_start']}..{w['train_end']} ({w['train_days_with_rows']} day(s) with rows), "
            f"holdout {w['holdout_start']}..{w['holdout_end']} ({w['holdout_days_with_rows']} day(s) with rows); "
            f"labels matured until {w['labels_matured_until']}"
        )
    for note in res.notes or []:
        err.print(Text(f"note: {note}", style="yellow"))
    scores = f"{headline(spec.model.kind, res.metrics)} on {res.metrics['holdout_rows']:,} held-out rows"
    out.print(f"registered {res.model_name} v{res.version}: {scores}" if res.registered else f"{res.model_name}: {scores}")
    out.print(Text(res.reason))


@friendly
def model_register(
    file: Path = typer.Argument(
        ..., help="the model: .ubj or .json (a Booster's or the scikit-learn wrapper's), or an MLflow model folder"
    ),
    job: str = typer.Option(..., help="job name: the model must fit its feature contract and model.kind"),
    promote: bool = typer.Option(False, "--promote", help="point the job's alias (champion) at the new version"),
    note: str | None = typer.Option(None, help="a note kept with the version (where the model comes from, why)"),
    end: str | None = typer.Option(None, help="last day of the reference window (YYYY-MM-DD); default: the latest complete day"),
    days: int | None = typer.Option(None, min=1, help="days in the reference window; default: the job's training.train_days"),
) -> None:
    """Register a model trained elsewhere, after checking it against the job's feature contract."""
    from pipeline.handover import register_file
    from pipeline.jobs import load_job
    from pipeline.kinds import headline

    s = settings()
    spec = load_job(s.jobs_dir, job)
    ready(s)
    last = parse_ds(end, "--end") if end is not None else None
    with out.status(f"checking {file.name} against job {job}…"):
        res = register_file(s, spec, file, promote=promote, note=note, end=last, days=days)
    if res.coding:
        out.print("categories:")
        for line in res.coding:
            out.print(Text(f"  {line}"))
    if not res.registered:
        out.print(f"{file.name} is byte-identical to the registered {res.model_name} v{res.version}: nothing registered")
        _promote_hint(spec, res.version, res.previous)
        return
    start, stop = res.window
    out.print(f"reference window {start}..{stop}: {res.rows:,} rows, {res.labelled:,} labelled; {headline(spec.model.kind, res.metrics)}")
    for line in res.warnings:
        err.print(Text(f"warning: {line}", style="yellow"))
    out.print(f"registered {res.model_name} v{res.version} from {file.name} ({res.format})")
    if res.promoted:
        alias = f"{res.model_name}@{spec.model.alias}"
        out.print(f"{alias}: v{res.previous} → v{res.version}" if res.previous else f"{alias}: v{res.version}")
        _export_jobs_of(s, res.model_name)  # nightscore_model_info names the new version
    else:
        _promote_hint(spec, res.version, res.previous)


def _promote_hint(spec: JobSpec, version: int, current: int | None) -> None:
    """How to score with ``version``, unless the job's alias points at it already."""
    model = spec.model
    if current == version:
        out.print(f"{model.name}@{model.alias} is v{version}")
        return
    flag = "" if model.alias == "champion" else f" --alias {model.alias}"
    out.print(Text(f"to score with it: nightscore model promote {model.name} {version}{flag}"))


def origin_text(mv: ModelVersion) -> str:
    """Where a version came from, over its days: ``trained`` and its training window, or the file a registered
    version came from and its reference window (``ref``)."""
    w, origin = mv.training_window or {}, mv.origin or {}
    if mv.registered:
        start, end, how = w.get("reference_start"), w.get("reference_end"), f"file {origin.get('file')}"
        if origin.get("format") == "mlflow":
            how = f"MLflow {origin.get('file')}"
    else:
        start, end, how = w.get("train_start"), w.get("holdout_end"), "trained"
    days = f"{str(start)[2:]}..{str(end)[2:]}" if start and end else "no window"
    return f"{cut(how, 22)}\n{'ref ' if mv.registered else ''}{days}"


@friendly
def model_list(
    name: str | None = typer.Argument(None, help="model name; default: all"),
    as_json: bool = typer.Option(False, "--json", help="print the versions as JSON (for scripts)"),
) -> None:
    """List registered versions with their kind, metrics, window, origin and aliases."""
    from dataclasses import asdict

    from pipeline.catalog import model_versions
    from pipeline.kinds import headline

    versions = model_versions(ready(settings()), name)
    if as_json:
        print_json([{**asdict(mv), "registered": mv.registered, "aliases": aliases} for mv, aliases in versions])
        return
    table = Table(
        *(Column(h, no_wrap=True) for h in ("model (kind)", "v", "aliases", "metrics", "from")),
        box=BOX,
        pad_edge=False,
        collapse_padding=True,
    )
    for mv, aliases in versions:
        table.add_row(
            f"{mv.name}\n({mv.kind})",
            str(mv.version),
            ", ".join(aliases),
            headline(mv.kind, mv.metrics or {}).replace(", ", "\n").replace(" (no labelled", "\n(no labelled"),
            origin_text(mv),
            end_section=True,
        )
    out.print(table, soft_wrap=False)


@friendly
def model_promote(
    name: str,
    version: int,
    alias: str = typer.Option("champion"),
    reason: str = typer.Option("manual promotion"),
    evidence: str | None = typer.Option(
        None, "--evidence", help="compare: cite VERSION's shadow comparison with the published champion (kept in the alias history)"
    ),
    job: str | None = typer.Option(None, help="--evidence compare: the job it shadowed; default: the one job scored by NAME"),
    days: int = typer.Option(7, min=1, max=3660, help="--evidence compare: days in the comparison's window"),
) -> None:
    """Point ALIAS (default champion) at VERSION; takes effect for the next run."""
    from pipeline import registry

    s = settings()
    eng = ready(s)
    cited = None
    if evidence is not None:
        if evidence != "compare":
            raise UsageError(f"--evidence {evidence!r} is not known", where="--evidence", fix="--evidence compare")
        from pipeline.cli.shadow import evidence_text
        from pipeline.compare import promotion_evidence

        registry.get_version(eng, name, version)  # an unknown version is named before any comparison
        with out.status(f"comparing {name} v{version} with the published champion…"):
            cited = promotion_evidence(s, name, version, job=job, days=days)
        out.print(Text(f"evidence: {evidence_text(cited)}"))
    prev = registry.set_alias(eng, name, alias, version, reason=reason, evidence=cited)
    out.print(f"{name}@{alias}: v{prev} → v{version}" if prev else f"{name}@{alias}: v{version}")
    _export_jobs_of(s, name)


@friendly
def model_rollback(name: str, alias: str = typer.Option("champion")) -> None:
    """Point ALIAS back at the version it had before its last change."""
    from pipeline import registry

    s = settings()
    prev, now = registry.rollback(ready(s), name, alias)
    out.print(f"{name}@{alias}: v{now} → v{prev} (rolled back)")
    _export_jobs_of(s, name)


def _export_jobs_of(s: Any, model: str) -> None:
    """The metrics of every job scored by ``model`` (their ``nightscore_model_info`` names the version now)."""
    from pipeline.jobs import load_each
    from pipeline.metrics import export

    for spec in load_each(s.jobs_dir)[0]:  # a broken spec is `nightscore jobs --check`'s news
        if spec.model.name == model:
            export(s, spec.name)
