"""One scoring run of a (job, ds) partition: a ``scoring_runs`` row, its shards, one publish.

A run splits its day into shards (:mod:`pipeline.shards`: a stable hash of the entity key, computed by
PostgreSQL). Each shard extracts, validates, scores and loads its own rows into the run's loading table,
and records itself in ``run_shards``; a shard can be retried alone, replacing what it loaded before. The
day is then checked as a whole (row count, bad-row share, counts that add up) and published in one atomic
swap. ``shards: 1`` is the same path with one shard.

The steps take and return small JSON-friendly states (what Airflow tasks pass on through XCom); data moves
as Parquet through the artifact store:

- :func:`begin`: the run record, the model, the shard plan, the loading table;
- :func:`shard_step`: one shard, end to end (a worker process here, a mapped task in Airflow);
- :func:`publish_step`: the day's rules over every shard, the primary key and the swap;
- :func:`finish_step`: drift, the manifest, ``succeeded``.

:func:`score_partition` runs them all, the shards in worker processes on this machine. A failing step marks
the run failed with its message and re-raises; published data is untouched.
"""

from __future__ import annotations

import gc
import json
import logging
import platform
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

import pipeline
from pipeline import db, failpoints, registry, runs, shards
from pipeline.config import Settings
from pipeline.errors import Interrupted, NightscoreError, explain
from pipeline.jobs import JobSpec, load_job
from pipeline.metrics import export as export_metrics
from pipeline.storage import ArtifactStore, open_store, run_prefix, stream_parquet

if TYPE_CHECKING:  # the stages' modules are imported by the steps that use them
    from pipeline.extract import Extracted
    from pipeline.feed import BatchFeed
    from pipeline.registry import ModelVersion
    from pipeline.score import Scored
    from pipeline.validate import ValidationOutcome

log = logging.getLogger(__name__)
SHARD_STAGES = ("extract", "validate", "score", "load")


@dataclass
class RunState:
    """The run as a whole. With one shard its artifacts' URIs are the shard's; with several they are per
    shard in ``run_shards``, and the run's own are summaries written at publish."""

    run_id: str
    job: str
    ds: str
    prefix: str
    dry_run: bool = False
    pinned_version: int | None = None
    airflow_run_id: str | None = None
    model_name: str | None = None
    model_version: int | None = None
    model_sha256: str | None = None
    shards: int = 1
    loading_table: str | None = None
    features_uri: str | None = None
    features_sha256: str | None = None
    validation_uri: str | None = None
    data_docs_uri: str | None = None
    predictions_uri: str | None = None
    manifest_uri: str | None = None
    report_uri: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    drift: dict[str, Any] | None = None

    @property
    def day(self) -> date:
        return date.fromisoformat(self.ds)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunState:
        return cls(**d)


@dataclass
class ShardState:
    """One shard of a run: its rows are those whose key hashes to ``index`` of ``shards``."""

    run_id: str
    job: str
    ds: str
    index: int
    shards: int
    prefix: str
    dry_run: bool = False
    model_version: int | None = None
    loading_table: str | None = None
    attempt: int = 1
    features_uri: str | None = None
    features_sha256: str | None = None
    validation_uri: str | None = None
    data_docs_uri: str | None = None
    predictions_uri: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds of this process (all its threads) per stage

    @property
    def day(self) -> date:
        return date.fromisoformat(self.ds)

    @property
    def label(self) -> str:
        """How the run's error names the shard: ``[shard 2/4 validate]``."""
        return "" if self.shards == 1 else f"shard {self.index}/{self.shards}"

    @property
    def where(self) -> str:
        return f"job {self.job}, ds {self.ds}" + (f", shard {self.index} of {self.shards}" if self.shards > 1 else "")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ShardState:
        return cls(**d)


def shard_state(state: RunState, index: int) -> ShardState:
    """Shard ``index`` of the run. One shard writes its artifacts where a run always has (``<run>/``),
    several each under ``<run>/shard-NNN/``."""
    prefix = state.prefix if state.shards == 1 else f"{state.prefix}/shard-{index:03d}"
    return ShardState(
        state.run_id, state.job, state.ds, index, state.shards, prefix, state.dry_run, state.model_version, state.loading_table
    )


class _Ctx:
    """What every stage needs, built once per stage from settings."""

    def __init__(self, settings: Settings, job: str, workdir: Path) -> None:
        self.settings = settings
        self.spec: JobSpec = load_job(settings.jobs_dir, job)
        self.eng = db.ready_engine(settings)
        self.store: ArtifactStore = open_store(settings)
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)


def _run_workdir(settings: Settings, run_id: str) -> Path:
    return settings.home / "work" / run_id


def _shard_workdir(settings: Settings, shard: ShardState) -> Path:
    return _run_workdir(settings, shard.run_id) / f"shard-{shard.index:03d}"


@contextmanager
def _stage(settings: Settings, state: RunState, name: str) -> Iterator[_Ctx]:
    """One stage of the run as a whole, worked on by this process (owner and heartbeat in the ledger): its
    seconds recorded, and on failure the run marked failed (or interrupted), its manifest written, its
    loading table dropped and its work folder removed. Any error leaves as a :class:`NightscoreError`
    paragraph, the original exception as its cause."""
    t0 = time.perf_counter()
    ctx: _Ctx | None = None
    try:
        ctx = _Ctx(settings, state.job, _run_workdir(settings, state.run_id))
        with runs.owned(ctx.eng, state.run_id, name, every=settings.heartbeat_s):
            failpoints.reached(name)
            yield ctx
    except BaseException as exc:
        error = _record_failure(settings, state, name, exc, ctx)
        if error is not exc:
            raise error from exc
        raise
    finally:
        state.seconds[name] = round(time.perf_counter() - t0, 4)
        if ctx is not None:
            try:
                runs.stage_seconds(ctx.eng, state.run_id, name, state.seconds[name])
            except Exception as exc:
                log.info("run %s: stage timing not recorded (%s)", state.run_id, str(exc).splitlines()[0])


def _interrupted(exc: BaseException) -> bool:
    return isinstance(exc, KeyboardInterrupt | Interrupted) or type(exc).__name__ == "AirflowTaskTerminated"


def _explained(exc: BaseException, stage: str, where: str) -> tuple[BaseException, str, str]:
    """What to raise for ``exc`` (a signal as it is, anything else as one paragraph), the message to
    record, and the status (``interrupted`` or ``failed``)."""
    if _interrupted(exc):
        return exc, f"{exc}; the published data was left as it was", "interrupted"
    error = explain(exc, stage=stage, where=where)
    return error, str(error), "failed"


def _tag(exc: BaseException, error: BaseException, **marks: Any) -> None:
    """Mark the original exception and the one raised for it as recorded (set on both, once each)."""
    for e in {id(exc): exc, id(error): error}.values():
        for k, v in marks.items():
            try:
                setattr(e, k, v)
            except AttributeError:
                pass


def _record_failure(settings: Settings, state: RunState, name: str, exc: BaseException, ctx: _Ctx | None) -> BaseException:
    """Record the failure of stage ``name`` once (ledger, manifest, loading table, work folder); return what
    to raise. A shard's failure names its shard and stage (``[shard 2/4 validate]``).

    A run whose swap committed stays ``published``: the error is recorded beside it. Everything here works
    on fresh connections and never masks ``exc``: what it cannot record, the reaper records later."""
    if getattr(exc, "_nightscore_recorded", False):
        return exc
    name = getattr(exc, "_nightscore_stage", None) or name
    error, message, status = _explained(exc, name, f"job {state.job}, ds {state.ds}")
    log.info("run %s (%s %s) ended in %s: %s", state.run_id, state.job, state.ds, name, message)
    eng = None
    try:
        eng = ctx.eng if ctx is not None else db.engine(settings)
        if runs.status(eng, state.run_id) in ("published", "succeeded"):
            status = "published"  # the swap committed: the run's rows are the day's, whatever failed after
            if isinstance(error, NightscoreError):
                error = type(error)(
                    f"{state.job} {state.ds} was published by run {state.run_id}, but then {error.what.rstrip('.')}",
                    where=error.where,
                    fix=f"{error.fix or 'see the error'}; the published predictions are complete and stay as they are",
                )
                message = str(error)
        runs.finish(eng, state.run_id, status, error=f"[{name}] {message}", stage=name)
        if status != "published":  # shards that were still at work when the run ended
            runs.end_open_shards(eng, state.run_id, "interrupted" if status == "interrupted" else "abandoned")
    except Exception as rec_exc:  # the original error matters more than a failed bookkeeping write
        log.info("run %s: its failure was not recorded (%s); `nightscore runs --reap` will", state.run_id, str(rec_exc).splitlines()[0])
    else:
        try:
            _write_manifest(settings, state, eng, status=status, error=message)
        except Exception as man_exc:  # the store may be what failed; the ledger has it all
            log.info("run %s: its manifest was not written (%s)", state.run_id, str(man_exc).splitlines()[0])
        if not state.dry_run:
            export_metrics(settings, state.job, eng)
    if status != "published" and state.loading_table and eng is not None:
        from pipeline.publish import drop_loading_table

        drop_loading_table(eng, state.loading_table)
    shutil.rmtree(_run_workdir(settings, state.run_id), ignore_errors=True)
    _tag(exc, error, _nightscore_recorded=True)
    return error


@contextmanager
def interruptible() -> Iterator[None]:
    """SIGTERM (what Airflow, systemd and Kubernetes send) and SIGINT raise :class:`Interrupted` in the main
    thread, so the run in progress records itself ``interrupted`` and cleans up; a second signal during that
    clean-up is ignored. Outside the main thread this does nothing."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        if fired:
            return
        fired.append(signum)
        raise Interrupted(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


# --------------------------------------------------------------------------------------------
# begin: the run, its model, its shards
# --------------------------------------------------------------------------------------------
def begin(
    settings: Settings,
    job: str,
    ds: date,
    *,
    model_version: int | None = None,
    dry_run: bool = False,
    airflow_run_id: str | None = None,
    shard_count: int | None = None,
) -> RunState:
    """Create the run record, resolve the model (failing fast if there is none), plan the shards (the job
    spec's ``shards``, unless ``shard_count`` overrides it) and create the loading table they fill.
    Dead runs are reaped first."""
    from pipeline.publish import create_loading_table, loading_table_name
    from pipeline.reap import reap_quietly  # reap imports publish, which this module imports only when publishing

    spec = load_job(settings.jobs_dir, job)
    eng = db.ready_engine(settings)
    store = open_store(settings)
    reap_quietly(settings, eng)
    run_id = str(uuid.uuid4())
    n = shards.resolve(spec.shards, shard_count)
    state = RunState(run_id, job, ds.isoformat(), run_prefix(job, ds.isoformat(), run_id), dry_run, model_version, airflow_run_id, shards=n)
    runs.start(eng, run_id, job, ds, dry_run=dry_run, airflow_run_id=airflow_run_id, artifacts_uri=store.uri(state.prefix))
    with _stage(settings, state, "resolve_model") as ctx:
        mv = registry.resolve(ctx.eng, spec.model.name, spec.model.alias, model_version)
        state.model_name, state.model_version, state.model_sha256 = mv.name, mv.version, mv.sha256
        if not dry_run:
            state.loading_table = loading_table_name(run_id)
            create_loading_table(ctx.eng, state.loading_table, job, ds)
        runs.update(
            ctx.eng,
            run_id,
            model_name=mv.name,
            model_version=mv.version,
            model_sha256=mv.sha256,
            shards=n,
            loading_table=state.loading_table,
        )
        runs.plan_shards(ctx.eng, run_id, n)
    return state


# --------------------------------------------------------------------------------------------
# one shard: extract -> validate -> score -> load
# --------------------------------------------------------------------------------------------
@contextmanager
def _shard_stage(settings: Settings, shard: ShardState, name: str, started: float | None = None, cpu_before: float = 0.0) -> Iterator[_Ctx]:
    """One stage of one shard: its seconds recorded in ``run_shards`` (from ``started`` when the work began
    earlier; ``cpu_before``: CPU seconds that earlier work took); on failure the shard and the run marked
    failed (or interrupted) with the shard and stage named, and the shard's work folder removed."""
    t0 = time.perf_counter() if started is None else started
    c0 = time.process_time() - cpu_before
    ctx: _Ctx | None = None
    try:
        ctx = _Ctx(settings, shard.job, _shard_workdir(settings, shard))
        runs.update_shard(ctx.eng, shard.run_id, shard.index, stage=name)
        if shard.shards == 1:
            runs.update(ctx.eng, shard.run_id, stage=name)
        failpoints.reached(name)
        yield ctx
    except BaseException as exc:
        error = _shard_failure(settings, shard, name, exc, ctx)
        if error is not exc:
            raise error from exc
        raise
    finally:
        shard.seconds[name] = round(time.perf_counter() - t0, 4)
        shard.cpu[name] = round(shard.cpu.get(name, 0.0) + time.process_time() - c0, 4)
        if ctx is not None:
            try:
                runs.update_shard(ctx.eng, shard.run_id, shard.index, seconds={name: shard.seconds[name]})
            except Exception as exc:
                log.info("run %s: shard timing not recorded (%s)", shard.run_id, str(exc).splitlines()[0])


def _shard_failure(settings: Settings, shard: ShardState, name: str, exc: BaseException, ctx: _Ctx | None) -> BaseException:
    """Record a shard's failure in its ``run_shards`` row and on the run (the day cannot be published
    without it), write the run's manifest and remove the shard's work folder; return what to raise."""
    if getattr(exc, "_nightscore_shard_recorded", False):
        return exc
    label = f"{shard.label} {name}".strip()
    error, message, status = _explained(exc, name, shard.where)
    detail = (
        {"kind": type(error).__name__, "what": error.what, "where": error.where, "fix": error.fix}
        if isinstance(error, NightscoreError)
        else {"kind": type(error).__name__, "what": message}
    )
    try:
        eng = ctx.eng if ctx is not None else db.engine(settings)
        runs.update_shard(
            eng, shard.run_id, shard.index, status=status, stage=name, error=message, error_detail=detail, finished_at=datetime.now(UTC)
        )
        if runs.status(eng, shard.run_id) not in ("published", "succeeded"):
            runs.finish(eng, shard.run_id, status, error=f"[{label}] {message}", stage=label)
            _write_manifest(settings, _state_of(eng, shard), eng, status=status, error=message)
            export_metrics(settings, shard.job, eng)
    except Exception as rec_exc:
        log.info("run %s: the failure of %s was not recorded (%s)", shard.run_id, label, str(rec_exc).splitlines()[0])
    shutil.rmtree(_shard_workdir(settings, shard), ignore_errors=True)
    _tag(exc, error, _nightscore_shard_recorded=True, _nightscore_stage=label)
    return error


def _state_of(eng: Any, shard: ShardState) -> RunState:
    """The run's state, read back from its row (for a manifest written from a shard)."""
    row = runs.get(eng, shard.run_id) or {}
    state = RunState(shard.run_id, shard.job, shard.ds, "", shard.dry_run, shards=shard.shards, loading_table=shard.loading_table)
    state.prefix = run_prefix(shard.job, shard.ds, shard.run_id)
    state.model_name, state.model_version, state.model_sha256 = row.get("model_name"), row.get("model_version"), row.get("model_sha256")
    state.airflow_run_id = row.get("airflow_run_id")
    return state


def open_shard(settings: Settings, state: RunState, index: int) -> ShardState:
    """Start (or retry) shard ``index`` of the run in this process: its attempt counted in ``run_shards``."""
    shard = shard_state(state, index)
    shard.attempt = runs.claim_shard(db.ready_engine(settings), state.run_id, index)
    shutil.rmtree(_shard_workdir(settings, shard), ignore_errors=True)  # an earlier attempt's leftovers
    return shard


def shard_step(settings: Settings, state: RunState, index: int, *, threads: int | None = None) -> ShardState:
    """Shard ``index`` of the run, end to end: extract its rows (through its own query and stream) while a
    GX thread validates each batch as it arrives, score the snapshot while validation finishes, store the
    artifacts, and load the scores into the run's loading table (replacing what an earlier attempt of this
    shard loaded). ``threads``: the model's and the load's (default: the settings'). Idempotent: a retry of
    the shard alone gives the same rows."""
    if threads is not None:
        settings = settings.with_overrides(threads=threads)
    shard = open_shard(settings, state, index)
    shard = extract_validate(settings, shard, score_meanwhile=True)
    if shard.predictions_uri is None:
        shard = score_shard(settings, shard)
    return load_shard(settings, shard)


def extract_shard(settings: Settings, shard: ShardState, feed: BatchFeed | None = None) -> ShardState:
    from pipeline.extract import extract

    with _shard_stage(settings, shard, "extract") as ctx:
        sql = shards.shard_sql(ctx.spec.source_sql(shard.day), ctx.spec.entity_key, shard.index, shard.shards)
        _record_extract(ctx, shard, extract(settings, ctx.spec, shard.day, ctx.store, shard.prefix, ctx.workdir, sql=sql, feed=feed))
    return shard


def _record_extract(ctx: _Ctx, shard: ShardState, ex: Extracted) -> None:
    shard.features_uri, shard.features_sha256 = ex.uri, ex.sha256
    shard.counts["extracted"] = ex.rows
    runs.update_shard(ctx.eng, shard.run_id, shard.index, rows_extracted=ex.rows, features_uri=ex.uri, features_sha256=ex.sha256)
    if shard.shards == 1:  # the run's row mirrors its only shard as it goes
        runs.update(ctx.eng, shard.run_id, rows_extracted=ex.rows)


def validate_shard(settings: Settings, shard: ShardState) -> ShardState:
    """Run the contract's GX suites on the shard's snapshot batch by batch; save the result and any quarantine."""
    from pipeline.validate import validate_parquet

    with _shard_stage(settings, shard, "validate") as ctx:
        assert shard.features_uri, "extract must run first"
        with ctx.store.local_path(ctx.store.key(shard.features_uri)) as path:
            outcome = validate_parquet(ctx.spec, path, settings.validate_batch_rows, whole_day=shard.shards == 1)
        _record_validation(ctx, shard, outcome)
    return shard


def extract_validate(settings: Settings, shard: ShardState, *, score_meanwhile: bool = False) -> ShardState:
    """:func:`extract_shard` then :func:`validate_shard` in one pass.

    Each batch read from the source is written to ``features.parquet`` and handed to a GX thread that
    validates it meanwhile, in runs of ``validate_batch_rows`` as the rows arrive, instead of validation
    reading the file back afterwards. Same files, counts and outcome as the two steps; a failure is
    recorded against the stage it happened in. The validate stage's seconds are what it took after the
    extract (and, with ``score_meanwhile``, the scoring) finished.

    With ``score_meanwhile``, the snapshot is also scored while validation finishes (see
    :func:`_score_early`); ``shard.predictions_uri`` is then set unless that score had to be dropped.
    """
    from concurrent.futures import ThreadPoolExecutor

    from pipeline.feed import BatchFeed

    feed = BatchFeed()
    spec = load_job(settings.jobs_dir, shard.job)
    early: Scored | None = None
    if score_meanwhile:  # this thread's one big import, done before the GX thread starts importing GX: two
        import xgboost  # noqa: F401  # threads importing modules they share can deadlock on Python's import locks
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="nightscore-validate") as pool:
        validating = pool.submit(_validate_feed, spec, feed, settings.validate_batch_rows, shard.shards == 1)
        try:
            extract_shard(settings, shard, feed)
        except BaseException:
            feed.abort()
            raise
        feed.close()
        started, c_started = time.perf_counter(), time.process_time()
        if score_meanwhile:
            early = _score_early(settings, shard)
        early_cpu = time.process_time() - c_started  # the model's threads, and the GX thread finishing meanwhile
        with _shard_stage(settings, shard, "validate") as ctx:
            outcome = validating.result()
            if outcome.rows != shard.counts["extracted"]:  # cannot happen unless a batch went missing
                raise RuntimeError(f"validated {outcome.rows} rows of the {shard.counts['extracted']} extracted")
            _record_validation(ctx, shard, outcome)
    if early is not None:
        if shard.counts.get("quarantined"):  # those rows were scored too: score again without them
            Path(early.uri).unlink(missing_ok=True)
        else:
            with _shard_stage(settings, shard, "score", started=started, cpu_before=early_cpu) as ctx:
                _record_score(ctx, shard, early)
    return shard


def _score_early(settings: Settings, shard: ShardState) -> Scored | None:
    """Score the complete snapshot while the GX thread finishes its last rows, into the shard's work folder.

    Validation's tail (its last GX run, the day suite, Data Docs) keeps one core busy, the model's threads
    use the other. At 1,000,000 rows, with the whole million in one GX run after the extract: end to end
    5.0-5.4 s against 5.3-5.8 s with two half runs, one of them during the extract, and 5.1-5.7 s with
    scoring after validation. The file is stored only if validation then passes with nothing quarantined;
    a failed validation removes it with the work folder. Any error here only means scoring runs again,
    as its own stage, after validation."""
    try:
        return _score_snapshot(_Ctx(settings, shard.job, _shard_workdir(settings, shard)), shard, [])
    except Exception:
        log.info("run %s: scoring during validation failed; scoring again after it", shard.run_id, exc_info=True)
        return None


def _validate_feed(spec: JobSpec, feed: BatchFeed, batch_rows: int, whole_day: bool) -> ValidationOutcome:
    from pipeline.feed import rebatched
    from pipeline.validate import validate_batches

    try:
        return validate_batches(spec, feed.schema(), rebatched(feed, batch_rows), whole_day=whole_day)
    finally:
        feed.stop()


def _record_validation(ctx: _Ctx, shard: ShardState, outcome: ValidationOutcome) -> None:
    """Save the result (JSON + Data Docs) and any quarantine, update the shard, raise if it failed."""
    from pipeline.validate import raise_if_failed

    shard.validation_uri = ctx.store.put_bytes(
        f"{shard.prefix}/validation.json", json.dumps(outcome.report(), indent=2, default=str).encode()
    )
    shard.data_docs_uri = ctx.store.put_bytes(f"{shard.prefix}/data_docs/index.html", outcome.html.encode())
    shard.counts["quarantined"] = outcome.rows_quarantined if outcome.passed else 0
    shard.counts["valid"] = outcome.rows - shard.counts["quarantined"] if outcome.passed else 0
    if outcome.passed and outcome.quarantined:
        assert shard.features_uri
        with ctx.store.local_path(ctx.store.key(shard.features_uri)) as path:
            values = _quarantined_values(path, ctx.spec.entity_key, list(outcome.quarantined))
        with ctx.eng.begin() as conn:  # a retried shard replaces its earlier attempt's quarantine
            conn.execute(
                sa.text("DELETE FROM quarantined_rows WHERE run_id = CAST(:r AS uuid) AND entity_id = ANY(:keys)"),
                {"r": shard.run_id, "keys": [str(k) for k in outcome.quarantined]},
            )
        runs.save_quarantine(ctx.eng, shard.run_id, shard.job, shard.day, outcome.quarantined, values)
        ctx.store.put_bytes(f"{shard.prefix}/quarantined_keys.json", json.dumps(sorted(map(str, outcome.quarantined))).encode())
        log.warning("run %s (%s): %s", shard.run_id, shard.where, outcome.message)
    summary = {"passed": outcome.passed, "message": outcome.message, "failed_rules": outcome.summary()}
    runs.update_shard(
        ctx.eng,
        shard.run_id,
        shard.index,
        validation_summary={"success": outcome.success, **summary},
        validation_uri=shard.validation_uri,
        data_docs_uri=shard.data_docs_uri,
        rows_valid=shard.counts["valid"],
        rows_quarantined=shard.counts["quarantined"],
    )
    if shard.shards == 1:
        runs.update(
            ctx.eng,
            shard.run_id,
            validation_success=outcome.success,
            validation_summary=summary,
            validation_report_uri=shard.validation_uri,
            data_docs_uri=shard.data_docs_uri,
            rows_valid=shard.counts["valid"],
            rows_quarantined=shard.counts["quarantined"],
        )
    if outcome.rows == 0 and shard.shards == 1:  # no rows at all is not a contract problem: say what it is
        from pipeline.extract import no_rows_error

        raise no_rows_error(ctx.settings, ctx.spec, shard.day)
    raise_if_failed(outcome, ctx.spec, where=f"{shard.where}, report {shard.validation_uri}")


def _quarantined_values(path: Any, key: str, keys: list[Any]) -> dict[Any, list[dict[str, Any]]]:
    """The refused rows themselves, by key (a duplicated key has several)."""
    import pyarrow.compute as pc

    pf = stream_parquet(path)
    wanted = pa.array(keys, type=pf.schema_arrow.field(key).type)
    out: dict[Any, list[dict[str, Any]]] = {}
    for batch in pf.iter_batches(batch_size=250_000):  # one batch in memory at a time
        for row in batch.filter(pc.is_in(batch.column(key), value_set=wanted)).to_pylist():
            out.setdefault(row[key], []).append(row)
    return out


def _model(ctx: _Ctx, model_version: int | None) -> tuple[ModelVersion, Any]:
    """The run's model version and its booster (checksum verified)."""
    assert model_version is not None, "the model is resolved when the run begins"
    mv = registry.get_version(ctx.eng, ctx.spec.model.name, model_version)
    return mv, registry.load_booster(ctx.store, mv)


def _score_snapshot(ctx: _Ctx, shard: ShardState, drop_keys: list[Any]) -> Scored:
    """The shard's snapshot, less ``drop_keys``, through its model into the work folder (not stored yet)."""
    from pipeline.score import score

    assert shard.features_uri, "extract must run first"
    mv, booster = _model(ctx, shard.model_version)
    with ctx.store.local_path(ctx.store.key(shard.features_uri)) as path:
        if drop_keys:  # keys were saved as text; match the column's own type
            key_type = pq.ParquetFile(path).schema_arrow.field(ctx.spec.entity_key).type
            drop_keys = pa.array(drop_keys).cast(key_type).to_pylist()
        return score(
            ctx.spec,
            shard.day,
            path,
            booster,
            mv,
            shard.run_id,
            ctx.workdir / "predictions.parquet",
            threads=ctx.settings.threads,
            batch_rows=ctx.settings.batch_rows,
            drop_keys=drop_keys,
            reference=_feature_reference(ctx, mv),
        )


def _feature_reference(ctx: _Ctx, mv: ModelVersion) -> dict[str, Any] | None:
    """The model's feature drift reference from its manifest (None for a model trained before there was one)."""
    from pipeline.storage import model_prefix

    try:
        manifest = json.loads(ctx.store.get_bytes(f"{model_prefix(mv.name, mv.version)}/manifest.json"))
    except Exception as exc:
        log.warning("%s v%s: no manifest (%s); feature drift not measured", mv.name, mv.version, str(exc).splitlines()[0])
        return None
    return (manifest.get("reference") or {}).get("features")


def _record_score(ctx: _Ctx, shard: ShardState, sc: Scored) -> None:
    """Store the scored file as the shard's predictions.parquet and count its rows."""
    shard.predictions_uri = ctx.store.put_file(f"{shard.prefix}/predictions.parquet", Path(sc.uri))
    shard.counts["scored"] = sc.rows
    runs.update_shard(
        ctx.eng, shard.run_id, shard.index, rows_scored=sc.rows, predictions_uri=shard.predictions_uri, drift_counts=sc.drift_counts
    )
    if shard.shards == 1:
        runs.update(ctx.eng, shard.run_id, rows_scored=sc.rows)


def score_shard(settings: Settings, shard: ShardState) -> ShardState:
    with _shard_stage(settings, shard, "score") as ctx:
        drop: list[Any] = []
        if shard.counts.get("quarantined"):
            drop = json.loads(ctx.store.get_bytes(f"{shard.prefix}/quarantined_keys.json"))
        _record_score(ctx, shard, _score_snapshot(ctx, shard, drop))
    return shard


def load_shard(settings: Settings, shard: ShardState) -> ShardState:
    """COPY the shard's scores into the run's loading table (a dry run loads nothing) and mark it loaded."""
    from pipeline.publish import load_shard as copy_in

    with _shard_stage(settings, shard, "load") as ctx:
        load_cpu = time.process_time()
        assert shard.predictions_uri, "score must run first"
        loaded = 0
        if not shard.dry_run:
            assert shard.loading_table, "the run's loading table is created when it begins"
            with ctx.store.local_path(ctx.store.key(shard.predictions_uri)) as path:
                loaded = copy_in(settings, ctx.eng, path, shard.loading_table, shard.index, shard.shards, clear=shard.attempt > 1)
            failpoints.reached("loaded")  # its rows are in, the shard not yet marked loaded
        shard.counts["loaded"] = loaded
        shard.cpu["load"] = round(time.process_time() - load_cpu, 4)
        resources = {"cpu": shard.cpu, "peak_mb": round(_peak_rss_mb(), 1)}
        runs.update_shard(
            ctx.eng, shard.run_id, shard.index, status="loaded", rows_loaded=loaded, resources=resources, finished_at=datetime.now(UTC)
        )
        shutil.rmtree(ctx.workdir, ignore_errors=True)
    return shard


def _peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux reports kilobytes)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------------------------
# the day: shards in worker processes, one publish, monitoring
# --------------------------------------------------------------------------------------------
class ShardsFailed(NightscoreError):
    """A shard of the day failed; nothing was published."""


def run_shards(settings: Settings, state: RunState, *, workers: int | None = None, retries: int = 1) -> RunState:
    """Every shard of the run on this machine: one in this process, several in ``workers`` forked worker
    processes (default: one per core), the model's threads shared out among them. A worker that dies (killed,
    out of memory) is retried alone, at most ``retries`` times; a shard that fails with an error fails the
    day, after the shards already running have finished."""
    eng = db.ready_engine(settings)
    if state.shards == 1:
        with runs.owned(eng, state.run_id, "shard", every=settings.heartbeat_s):
            shard_step(settings, state, 0)
        return _gather(settings, state)
    n_workers = shards.workers_for(state.shards, workers)
    threads = max(1, settings.threads // n_workers)
    t0 = time.perf_counter()
    if shards.start_method() == "fork":
        _preload_stage_modules()
    runs.claim(eng, state.run_id, "shards")  # no heartbeat thread: workers are forked from this process

    def loaded(index: int) -> bool:
        return runs.shard_status(eng, state.run_id, index) == "loaded"

    log.info(
        "run %s: %d shards in %d worker processes (%s), %d model thread(s) each",
        state.run_id,
        state.shards,
        n_workers,
        shards.start_method(),
        threads,
    )
    shards.run_in_processes(
        list(range(state.shards)),
        _shard_worker,
        (settings, state.to_dict(), threads),
        workers=n_workers,
        retries=retries,
        done=loaded,
        tick=lambda: runs.heartbeat(eng, state.run_id),
        tick_every=settings.heartbeat_s,
    )
    state.seconds["shards"] = round(time.perf_counter() - t0, 4)
    return _gather(settings, state)


def _shard_worker(settings: Settings, state: dict[str, Any], threads: int, index: int, attempt: int) -> None:
    """The body of a shard's worker process."""
    shard_step(settings, RunState.from_dict(state), index, threads=threads)


def _preload_stage_modules() -> None:
    """Import what every shard uses before forking (the forkserver's list): each worker then starts with
    them, at no cost."""
    import importlib

    for module in shards.PRELOAD:
        importlib.import_module(module)
    pipeline.validate._gx_context()  # GX's registry of expectations, built once


def _gather(settings: Settings, state: RunState) -> RunState:
    """The shards' outcomes into the run's state: raise the first failure, else sum the counts."""
    eng = db.ready_engine(settings)
    rows = runs.shards(eng, state.run_id)
    failed = [r for r in rows if r["status"] != "loaded"]
    if failed:
        first = failed[0]
        detail = first.get("error_detail") or {}
        label = (
            f"shard {first['shard']}/{state.shards} {first.get('stage') or ''}".strip()
            if state.shards > 1
            else (first.get("stage") or "shard")
        )
        if detail.get("what"):
            import pipeline.errors as errors

            cls = getattr(errors, str(detail.get("kind")), None)
            cls = cls if isinstance(cls, type) and issubclass(cls, NightscoreError) else ShardsFailed
            error: NightscoreError = cls(detail["what"], where=detail.get("where"), fix=detail.get("fix"))
        else:
            status = first["status"]
            error = ShardsFailed(
                f"shard {first['shard']} of {state.shards} did not finish ({'its worker process died' if status in ('running', 'pending') else status})",
                where=f"job {state.job}, ds {state.ds}, run {state.run_id}",
                fix="rerun the day (a killed worker is retried once; see the log for why it died); the published data was left as it was",
            )
        others = len(failed) - 1
        if others:
            error.args = (f"{error.args[0]} ({others} more shard(s) failed: `nightscore runs --show {state.run_id[:8]}` lists them)",)
        error._nightscore_stage = label  # type: ignore[attr-defined]
        raise error
    state.counts = {k: sum(int(r[f"rows_{k}"] or 0) for r in rows) for k in ("extracted", "valid", "quarantined", "scored", "loaded")}
    for stage in SHARD_STAGES:  # the slowest shard's time: what the day waited for
        times = [float((r["seconds"] or {}).get(stage, 0.0)) for r in rows]
        state.seconds[stage] = round(max(times), 4) if times else 0.0
    if state.shards == 1:
        r = rows[0]
        state.features_uri, state.features_sha256 = r["features_uri"], r["features_sha256"]
        state.validation_uri, state.data_docs_uri, state.predictions_uri = r["validation_uri"], r["data_docs_uri"], r["predictions_uri"]
    return state


def publish_step(settings: Settings, state: RunState) -> RunState:
    """The day as a whole: every shard loaded, its counts adding up, the day's validation rules over all
    shards; then one atomic swap (a dry run publishes nothing). A publish retried after its loading table
    was dropped loads the shards' stored predictions again first."""
    from pipeline.publish import publish_loaded
    from pipeline.validate import check_day

    with _stage(settings, state, "publish") as ctx:
        state = _gather(settings, state)
        c = state.counts
        if (
            c["extracted"] != c["valid"] + c["quarantined"]
            or c["scored"] != c["valid"]
            or (not state.dry_run and c["loaded"] != c["scored"])
        ):
            raise NightscoreError(
                f"the shards' counts do not add up: {c}",
                where=f"run_shards of run {state.run_id}",
                fix="rerun the day; the published data was left as it was",
            )
        runs.merge_stage_seconds(ctx.eng, state.run_id, {k: state.seconds[k] for k in SHARD_STAGES})
        runs.update(
            ctx.eng,
            state.run_id,
            rows_extracted=c["extracted"],
            rows_valid=c["valid"],
            rows_quarantined=c["quarantined"],
            rows_scored=c["scored"],
            validation_success=c["quarantined"] == 0,
        )
        if c["extracted"] == 0:  # no rows at all is not a contract problem: say what it is
            from pipeline.extract import no_rows_error

            raise no_rows_error(settings, ctx.spec, state.day, state.shards)
        check_day(
            ctx.spec, state.ds, c["extracted"], c["quarantined"], state.shards, where=f"job {state.job}, ds {state.ds}, run {state.run_id}"
        )
        if state.shards > 1:
            _write_day_reports(ctx, state)
        if state.dry_run:
            state.counts["published"] = 0
            log.info("dry run: %s rows scored for %s %s, nothing published", c["scored"], state.job, state.ds)
            runs.update(ctx.eng, state.run_id, rows_published=0)
            return state
        _reload_if_dropped(settings, ctx, state)
        assert state.loading_table
        pub = publish_loaded(settings, state.job, state.day, state.loading_table, state.run_id, c["loaded"])  # marks the run published
        state.counts["published"] = pub.rows
    _alert_quarantine(settings, state)
    return state


def _alert_quarantine(settings: Settings, state: RunState) -> None:
    """A published day with more of its rows quarantined than the spec's ``alerts.quarantine_share``: tell
    the people the spec names (the day is published; the alert is news, not a failure)."""
    from pipeline import alerts

    spec = load_job(settings.jobs_dir, state.job)
    limit, c = spec.alerts.quarantine_share, state.counts
    if limit is None or not c.get("extracted") or c.get("quarantined", 0) / c["extracted"] <= limit:
        return
    share = c["quarantined"] / c["extracted"]
    alerts.send(
        spec.alerts,
        alerts.Alert(
            job=state.job,
            ds=state.ds,
            kind="quarantine",
            summary=f"published with {c['quarantined']:,} of {c['extracted']:,} rows quarantined ({share:.2%}, alert above {limit:.2%})",
            detail=f"the reasons: nightscore runs --show {state.run_id}, or SELECT reasons FROM quarantined_rows WHERE run_id = '{state.run_id}'",
            run_id=state.run_id,
            airflow_run_id=state.airflow_run_id,
        ),
    )


def _reload_if_dropped(settings: Settings, ctx: _Ctx, state: RunState) -> None:
    """A publish retried after a failed one finds its loading table gone: load the shards' files again."""
    from pipeline.publish import STAGING_SCHEMA, create_loading_table, load_shard, loading_table_name

    with ctx.eng.connect() as conn:
        exists = conn.execute(sa.text("SELECT to_regclass(:t)"), {"t": f'{STAGING_SCHEMA}."{state.loading_table}"'}).scalar()
    if exists:
        return
    state.loading_table = loading_table_name(state.run_id)
    create_loading_table(ctx.eng, state.loading_table, state.job, state.day)
    runs.update(ctx.eng, state.run_id, loading_table=state.loading_table)
    for r in runs.shards(ctx.eng, state.run_id):
        with ctx.store.local_path(ctx.store.key(r["predictions_uri"])) as path:
            load_shard(settings, ctx.eng, path, state.loading_table, r["shard"], state.shards, clear=False)
    log.info("run %s: loading table dropped by an earlier try; the %d shards' predictions loaded again", state.run_id, state.shards)


def _write_day_reports(ctx: _Ctx, state: RunState) -> None:
    """For several shards: the day's validation summary and a Data Docs page linking each shard's."""
    rows = runs.shards(ctx.eng, state.run_id)
    report = {
        "shards": state.shards,
        "rows": state.counts["extracted"],
        "rows_quarantined": state.counts["quarantined"],
        "per_shard": [
            {
                "shard": r["shard"],
                "rows": r["rows_extracted"],
                "rows_quarantined": r["rows_quarantined"],
                "validation_uri": r["validation_uri"],
                "data_docs_uri": r["data_docs_uri"],
                "summary": r["validation_summary"],
            }
            for r in rows
        ],
    }
    state.validation_uri = ctx.store.put_bytes(f"{state.prefix}/validation.json", json.dumps(report, indent=2, default=str).encode())
    links = "".join(
        f'<li><a href="{r["data_docs_uri"]}">shard {r["shard"]}</a>: {r["rows_extracted"]} rows, {r["rows_quarantined"]} quarantined</li>'
        for r in rows
    )
    html = f"<!doctype html><title>{state.job} {state.ds}: validation</title><h1>{state.job} {state.ds}: {state.shards} shards</h1><ul>{links}</ul>"
    state.data_docs_uri = ctx.store.put_bytes(f"{state.prefix}/data_docs/index.html", html.encode())
    runs.update(ctx.eng, state.run_id, validation_report_uri=state.validation_uri, data_docs_uri=state.data_docs_uri)


def finish_step(settings: Settings, state: RunState) -> RunState:
    """Monitor drift over every shard's scores, write the manifest (last), and mark the run succeeded."""
    from pipeline.monitor import drift_report

    with _stage(settings, state, "monitor") as ctx:
        published = state.counts.get("published")
        state = _gather(settings, state)  # the shards' counts (an Airflow dry run hands over begin's state)
        state.counts["published"] = (
            published if published is not None else int((runs.get(ctx.eng, state.run_id) or {}).get("rows_published") or 0)
        )

        def monitor_and_record() -> None:
            parts = runs.shards(ctx.eng, state.run_id)
            uris = [r["predictions_uri"] for r in parts]
            with _local_files(ctx.store, uris) as paths:
                state.drift = drift_report(ctx.store, ctx.eng, ctx.spec, state.model_version, paths, [r.get("drift_counts") for r in parts])
            _record_drift(ctx, state)
            state.report_uri = _write_run_report(ctx, state)
            state.manifest_uri = _write_manifest(settings, state, ctx.eng, status="succeeded")
            runs.finish(ctx.eng, state.run_id, "succeeded", drift=state.drift, manifest_uri=state.manifest_uri, error=None)

        _retrying(monitor_and_record, f"run {state.run_id}: monitor and manifest")
        if not state.dry_run:
            export_metrics(settings, state.job, ctx.eng)
        shutil.rmtree(ctx.workdir, ignore_errors=True)
    return state


def _write_run_report(ctx: _Ctx, state: RunState) -> str | None:
    """The run's HTML report (``report.html`` beside its manifest); a report that cannot be drawn is logged,
    and the run goes on: it is a view of the ledger, which has it all."""
    from pipeline.report import run_report

    try:
        html = run_report(ctx.eng, ctx.store, ctx.spec, state, f"{state.prefix}/manifest.json")
    except Exception as exc:
        log.warning("run %s: its HTML report was not written: %s", state.run_id, explain(exc))
        return None
    return ctx.store.put_bytes(f"{state.prefix}/report.html", html.encode())


def _record_drift(ctx: _Ctx, state: RunState) -> None:
    """One drift_metrics row per feature and metric of the run (replacing an earlier try's)."""
    metrics = (state.drift or {}).pop("metrics", None)
    if not metrics:
        return
    with ctx.eng.begin() as conn:
        conn.execute(sa.text("DELETE FROM drift_metrics WHERE run_id = CAST(:r AS uuid)"), {"r": state.run_id})
        conn.execute(
            db.query("insert_drift_metric"),
            [{"run_id": state.run_id, "job": state.job, "ds": state.day, **m} for m in metrics],
        )
    state.drift = {**(state.drift or {}), "metrics_rows": len(metrics)}


@contextmanager
def _local_files(store: ArtifactStore, uris: list[str]) -> Iterator[list[Path]]:
    from contextlib import ExitStack

    with ExitStack() as stack:
        yield [stack.enter_context(store.local_path(store.key(u))) for u in uris]


def _retrying(fn: Any, what: str, attempts: int = 3, pause: float = 1.0) -> None:
    """``fn()``, tried again after a pause when the artifact store or the database failed (they come back)."""
    from pipeline.errors import DatabaseUnavailable, StorageError

    for attempt in range(1, attempts + 1):
        try:
            fn()
            return
        except Exception as exc:
            error = explain(exc)
            if attempt == attempts or not isinstance(error, StorageError | DatabaseUnavailable):
                raise
            log.warning("%s failed (try %d of %d), trying again in %.0f s: %s", what, attempt, attempts, pause, error)
            time.sleep(pause)
            pause *= 2


def _write_manifest(settings: Settings, s: RunState, eng: Any, *, status: str, error: str | None = None) -> str:
    import xgboost

    shard_rows = runs.shards(eng, s.run_id)
    manifest = {
        "job": s.job,
        "ds": s.ds,
        "run_id": s.run_id,
        "airflow_run_id": s.airflow_run_id,
        "status": status,
        "error": error,
        "dry_run": s.dry_run,
        "counts": s.counts,
        "features": {"uri": s.features_uri, "sha256": s.features_sha256},
        "model": {"name": s.model_name, "version": s.model_version, "sha256": s.model_sha256, "pinned": s.pinned_version is not None},
        "validation_uri": s.validation_uri,
        "data_docs_uri": s.data_docs_uri,
        "predictions_uri": s.predictions_uri,
        "report_uri": s.report_uri,
        "shards": [{k: v for k, v in r.items() if k not in ("run_id", "validation_summary", "error_detail")} for r in shard_rows],
        "drift": s.drift,
        "seconds": s.seconds,
        "versions": {"nightscore": pipeline.__version__, "xgboost": xgboost.__version__, "python": platform.python_version()},
        "written_at": datetime.now(UTC).isoformat(),
    }
    uri = open_store(settings).put_bytes(f"{s.prefix}/manifest.json", json.dumps(manifest, indent=2, default=str).encode())
    runs.update(eng, s.run_id, manifest_uri=uri)
    return uri


def score_partition(
    settings: Settings,
    job: str,
    ds: date,
    *,
    model_version: int | None = None,
    dry_run: bool = False,
    airflow_run_id: str | None = None,
    shard_count: int | None = None,
    workers: int | None = None,
) -> RunState:
    """Extract, validate, score and publish one (job, ds) partition: its shards in worker processes here,
    then one publish. Idempotent: rerun at will. The Airflow DAG runs the same steps, one task each and
    the shards as mapped tasks."""
    with _no_full_collections(), interruptible():
        state = begin(
            settings, job, ds, model_version=model_version, dry_run=dry_run, airflow_run_id=airflow_run_id, shard_count=shard_count
        )
        try:
            state = run_shards(settings, state, workers=workers)
            with runs.owned(db.engine(settings), state.run_id, "publish", every=settings.heartbeat_s):
                for step in (publish_step, finish_step):
                    state = step(settings, state)
        except BaseException as exc:  # a shard, or between stages (a signal, a lost connection): record it all the same
            error = _record_failure(settings, state, "run", exc, None)
            if error is not exc:
                raise error from exc
            raise
    return state


@contextmanager
def _no_full_collections() -> Iterator[None]:
    """Keep Python's cyclic garbage collector to its two young generations while a run works.

    A full collection walks every object the process holds, about 300,000 once pandas, pyarrow, XGBoost
    and GX are imported: 0.19 s each, and a 1,000,000-row run set one off about every other run. Young
    garbage is still collected as usual; what reaches the old generation waits until the run is over."""
    saved = gc.get_threshold()
    gc.set_threshold(saved[0], saved[1], 1_000_000)
    try:
        yield
    finally:
        gc.set_threshold(*saved)
