"""The state a run's steps hand on: the day as a whole (:class:`RunState`) and one shard of it
(:class:`ShardState`), both small and JSON-friendly (what Airflow tasks pass through XCom)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any, Self

from pipeline.storage import run_prefix


@dataclass(kw_only=True)
class _Part:
    """What the day and each of its shards both carry: which run and day, where its artifacts go, the
    loading table its rows go to, the artifacts it wrote, and its row counts and stage seconds."""

    run_id: str
    job: str
    ds: str
    prefix: str
    dry_run: bool = False
    model_version: int | None = None
    loading_table: str | None = None
    features_uri: str | None = None
    features_sha256: str | None = None
    validation_uri: str | None = None
    data_docs_uri: str | None = None
    predictions_uri: str | None = None
    reasons_uri: str | None = None  # explain: the rows' top reasons (pipeline.explain)
    explain: dict[str, Any] | None = None  # explain: the shard's or the day's contribution summary
    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    # when each stage ran, as Unix times [start, end]: stages overlap (validation runs beside the extract), so
    # the run report draws them on a timeline instead of adding their seconds
    spans: dict[str, list[float]] = field(default_factory=dict)

    @property
    def day(self) -> date:
        return date.fromisoformat(self.ds)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Self:
        return cls(**d)


@dataclass(kw_only=True)
class RunState(_Part):
    """The run as a whole. With one shard its artifacts' URIs are the shard's; with several they are per
    shard in ``run_shards``, and the run's own are summaries written at publish."""

    pinned_version: int | None = None
    airflow_run_id: str | None = None
    model_name: str | None = None
    model_sha256: str | None = None
    shards: int = 1
    manifest_uri: str | None = None
    report_uri: str | None = None
    drift: dict[str, Any] | None = None
    # the shadow models each shard scores besides the champion, as resolved when the run began:
    # [{requested, name, version, sha256}] (pipeline.shadow)
    shadows: list[dict[str, Any]] = field(default_factory=list)


@dataclass(kw_only=True)
class ShardState(_Part):
    """One shard of a run: its rows are those whose key hashes to ``index`` of ``shards``."""

    index: int
    shards: int
    attempt: int = 1
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds of this process (all its threads) per stage
    streamed: bool = False  # its rows were scored and COPYed while they were read (pipeline/run/shard.py)
    reload: bool = False  # the loading table may hold rows of this attempt already: clear them before loading

    @property
    def label(self) -> str:
        """How the run's error names the shard: ``[shard 2/4 validate]``."""
        return "" if self.shards == 1 else f"shard {self.index}/{self.shards}"

    @property
    def where(self) -> str:
        return f"job {self.job}, ds {self.ds}" + (f", shard {self.index} of {self.shards}" if self.shards > 1 else "")


def shard_state(state: RunState, index: int) -> ShardState:
    """Shard ``index`` of the run. One shard writes its artifacts where a run always has (``<run>/``),
    several each under ``<run>/shard-NNN/``."""
    prefix = state.prefix if state.shards == 1 else f"{state.prefix}/shard-{index:03d}"
    return ShardState(
        run_id=state.run_id,
        job=state.job,
        ds=state.ds,
        index=index,
        shards=state.shards,
        prefix=prefix,
        dry_run=state.dry_run,
        model_version=state.model_version,
        loading_table=state.loading_table,
    )


def run_state_of(row: dict[str, Any], shard: ShardState) -> RunState:
    """The run's state, from its ``scoring_runs`` row and one of its shards (for a manifest written from a
    shard)."""
    return RunState(
        run_id=shard.run_id,
        job=shard.job,
        ds=shard.ds,
        prefix=run_prefix(shard.job, shard.ds, shard.run_id),
        dry_run=shard.dry_run,
        shards=shard.shards,
        loading_table=shard.loading_table,
        model_name=row.get("model_name"),
        model_version=row.get("model_version"),
        model_sha256=row.get("model_sha256"),
        airflow_run_id=row.get("airflow_run_id"),
    )
