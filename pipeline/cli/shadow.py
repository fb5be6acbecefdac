"""Shadow models: ``compare`` (each shadow model against the published champion, per day and over the window)
and ``model history`` (every alias move, with the evidence a promotion cites)."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Column, Table
from rich.text import Text

from pipeline.cli.common import BOX, friendly, out, print_json, ready, settings
from pipeline.jobs import parse_ds


def _f(value: Any, fmt: str = ".4f") -> str:
    return "n/a" if value is None else format(value, fmt)


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def _agreement_row(label: str, d: dict[str, Any]) -> list[str]:
    diff = d.get("diff") or {}
    flipped = d.get("flipped")
    return [
        label,
        f"{d['rows']:,}",
        _pct(d["agreement"]),
        _f(d["pearson"], ".3f"),
        _f(diff.get("mean"), "+.4f"),
        f"{_f(diff.get('p5'), '+.3f')}..{_f(diff.get('p95'), '+.3f')}" if diff else "n/a",
        _f(d["psi"]),
        f"{flipped['count']:,}" if flipped else "n/a",
    ]


def agreement_table(result: dict[str, Any], c: dict[str, Any]) -> Table:
    """How one shadow model's scores compare with the champion's on the same rows: a row per day, then the window's."""
    w = result["window"]
    champions = ", ".join(f"v{v}" for v in c["champion_versions"])
    table = Table(
        Column("ds", no_wrap=True),
        Column("rows", justify="right"),
        Column("agree", justify="right"),
        Column("corr", justify="right"),
        Column("diff", justify="right"),
        Column("p5..p95", no_wrap=True),
        Column("PSI", justify="right"),
        Column("flipped", justify="right", no_wrap=True),
        title=f"{c['model_name']} v{c['shadow_version']} (shadow) against the champion ({champions}), {w['start']}..{w['end']}",
        title_justify="left",
        caption="agree: the same label (flipped: rows not); corr: Pearson's; diff: shadow score minus champion score",
        caption_justify="left",
        box=BOX,
        pad_edge=False,
        collapse_padding=True,
    )
    for d in c["days"]:
        table.add_row(*_agreement_row(d["ds"], d))
    table.add_section()
    table.add_row(*_agreement_row(f"{c['overall']['days']} day(s)", c["overall"]), style="bold")
    return table


def realized_table(result: dict[str, Any], c: dict[str, Any]) -> Table | None:
    """Each model's realized headline metric on the same labelled rows, and the difference's paired-bootstrap
    interval; None before any day's outcomes have matured."""
    from pipeline.compare import headline

    kind = result["kind"]
    rows: list[tuple[str, dict[str, Any] | None, str]] = [(d["ds"], d["realized"], d["labels"]) for d in c["days"]]
    o = c["overall"]
    if o["realized"] is None:
        return None
    name = headline(kind, o["realized"])["metric"]  # type: ignore[index]
    table = Table(
        Column("ds", no_wrap=True),
        Column("labelled", justify="right"),
        Column("champion", justify="right"),
        Column("shadow", justify="right"),
        Column("diff", justify="right"),
        Column("95% CI", no_wrap=True),
        Column("shadow better", justify="right"),
        title=f"{name} on the same labelled rows (paired bootstrap, {result['resamples']} resamples)",
        title_justify="left",
        box=BOX,
        pad_edge=False,
        collapse_padding=True,
    )

    def add(label: str, realized: dict[str, Any] | None, note: str, style: str = "") -> None:
        h = headline(kind, realized)
        if h is None:
            table.add_row(label, "", Text(note, style="dim"), "", "", "", "", style=style)
            return
        lo, hi = h["ci"]
        table.add_row(
            label,
            f"{realized['rows']:,}",  # type: ignore[index]
            _f(h["champion"]),
            _f(h["shadow"]),
            _f(h["diff"], "+.4f"),
            f"[{_f(lo, '+.4f')}, {_f(hi, '+.4f')}]",
            _pct(h["shadow_better_share"]),
            style=style,
        )

    for ds, realized, note in rows:
        add(ds, realized, note)
    table.add_section()
    add(f"{o['labelled_days']} day(s)", o["realized"], "", style="bold")
    return table


@friendly
def compare(
    job: str = typer.Option(..., help="job name"),
    days: int = typer.Option(7, min=1, max=3660, help="days in the window, ending --end"),
    end: str | None = typer.Option(None, help="the window's last day (YYYY-MM-DD); default: the latest day with shadow scores"),
    shadow: int | None = typer.Option(None, "--shadow", min=1, help="one shadow version; default: every one in the window"),
    resamples: int = typer.Option(1000, min=0, max=100_000, help="bootstrap resamples for the realized metrics' intervals"),
    as_json: bool = typer.Option(False, "--json", help="print the full comparison as JSON"),
) -> None:
    """Compare each shadow model with the published champion, per day and over the window: label agreement,
    score correlation, the difference's distribution, PSI, the flipped rows, and once outcomes have matured
    each model's realized metric and the difference with a paired-bootstrap 95% interval."""
    from pipeline.compare import compare as run_compare
    from pipeline.jobs import load_job

    s = settings()
    spec = load_job(s.jobs_dir, job)
    ready(s)
    last = parse_ds(end, "--end") if end else None
    with out.status(f"comparing {job}'s shadow models…"):
        result = run_compare(s, spec, days=days, end=last, version=shadow, resamples=resamples)
    if as_json:
        print_json(result)
        return
    for c in result["comparisons"]:
        out.print(agreement_table(result, c), soft_wrap=False)
        realized = realized_table(result, c)
        if realized is not None:
            out.print(realized, soft_wrap=False)
        else:
            out.print(Text(f"realized metrics: none yet ({c['days'][-1]['labels']})", style="dim"))
        sample = (c["overall"].get("flipped") or {}).get("sample") or []
        if sample:
            out.print(Text(f"flipped (largest moves first): {', '.join(sample[:10])}" + (" …" if len(sample) > 10 else ""), style="dim"))


@friendly
def model_history(
    name: str = typer.Argument(..., help="model name"),
    alias: str | None = typer.Option(None, help="one alias; default: all"),
    as_json: bool = typer.Option(False, "--json", help="print the moves as JSON, evidence included"),
) -> None:
    """Every move of the model's aliases, oldest first, with the evidence a promotion cited."""
    from pipeline import db, registry

    eng = ready(settings())
    registry.require_model(eng, name)
    with eng.connect() as conn:
        moves = [dict(r._mapping) for r in conn.execute(db.query("list_alias_moves"), {"n": name, "a": alias})]
    if as_json:
        print_json(moves)
        return
    table = Table(Column("when", no_wrap=True), "alias", Column("move", no_wrap=True), "by", "reason", "evidence", box=BOX, pad_edge=False)
    for m in moves:
        table.add_row(
            f"{m['changed_at']:%Y-%m-%d %H:%M}",
            m["alias"],
            f"v{m['from_version']} → v{m['to_version']}" if m["from_version"] else f"v{m['to_version']}",
            m["changed_by"],
            m["reason"],
            evidence_text(m["evidence"]),
        )
    out.print(table, soft_wrap=False)


def evidence_text(evidence: dict[str, Any] | None) -> str:
    """A promotion's evidence in a few words: the comparison's window, rows, agreement and headline metric."""
    if not evidence:
        return ""
    if evidence.get("kind") != "compare":
        return "yes"
    w = evidence.get("window") or {}
    text = f"compare {w.get('start')}..{w.get('end')}: {evidence.get('rows', 0):,} rows, agreement {_f(evidence.get('agreement'), '.2%')}"
    realized = evidence.get("realized")
    if realized:
        name = next(iter(realized["metrics"]))
        m = realized["metrics"][name]
        text += f", {name} {_f(m['diff'], '+.4f')} [{_f(m['ci'][0], '+.4f')}, {_f(m['ci'][1], '+.4f')}]"
    return text
