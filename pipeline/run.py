"""One scoring run of a (job, ds) partition: the stages in order, with a ``scoring_runs`` row for the attempt.

Each step takes and returns a small :class:`RunState` (JSON-friendly, what an Airflow task passes on
through XCom); data moves as Parquet through the artifact store. :func:`score_partition` runs them all.
A failing step marks the run failed with its message and re-raises; published data is untouched.
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

import pipeline
from pipeline import db, failpoints, registry, runs
from pipeline.config import Settings
from pipeline.errors import Interrupted, NightscoreError, explain
from pipeline.jobs import JobSpec, load_job
from pipeline.storage import ArtifactStore, open_store, run_prefix, stream_parquet

if TYPE_CHECKING:  # the stages' modules are imported by the steps that use them
    from pipeline.extract import Extracted
    from pipeline.feed import BatchFeed
    from pipeline.registry import ModelVersion
    from pipeline.score import Scored
    from pipeline.validate import ValidationOutcome

log = logging.getLogger(__name__)


@dataclass
class RunState:
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
    features_uri: str | None = None
    features_sha256: str | None = None
    validation_uri: str | None = None
    data_docs_uri: str | None = None
    predictions_uri: str | None = None
    manifest_uri: str | None = None
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


class _Ctx:
    """What every step needs, built once per step from settings."""

    def __init__(self, settings: Settings, state: RunState) -> None:
        self.settings = settings
        self.state = state
        self.spec: JobSpec = load_job(settings.jobs_dir, state.job)
        self.eng = db.ready_engine(settings)
        self.store: ArtifactStore = open_store(settings)
        self.workdir = settings.home / "work" / state.run_id
        self.workdir.mkdir(parents=True, exist_ok=True)


@contextmanager
def _stage(settings: Settings, state: RunState, name: str, started: float | None = None) -> Iterator[_Ctx]:
    """One stage of the run, worked on by this process (owner and heartbeat in the ledger): its seconds
    recorded (from ``started`` when the work began earlier), and on failure the run marked failed (or
    interrupted), its manifest written and its work folder removed. Any error leaves as a
    :class:`NightscoreError` paragraph, the original exception as its cause."""
    t0 = time.perf_counter() if started is None else started
    ctx: _Ctx | None = None
    try:
        ctx = _Ctx(settings, state)
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


def _record_failure(settings: Settings, state: RunState, name: str, exc: BaseException, ctx: _Ctx | None) -> BaseException:
    """Record the failure of stage ``name`` once (ledger, manifest, work folder); return what to raise.

    A run whose swap committed stays ``published``: the error is recorded beside it. Everything here works
    on fresh connections and never masks ``exc``: what it cannot record, the reaper records later."""
    if getattr(exc, "_nightscore_recorded", False):
        return exc
    interrupted = _interrupted(exc)
    error: BaseException = exc if interrupted else explain(exc, stage=name, where=f"job {state.job}, ds {state.ds}")
    message = f"{exc}; the published data was left as it was" if interrupted else str(error)
    log.info("run %s (%s %s) ended in %s: %s", state.run_id, state.job, state.ds, name, message)
    status = "interrupted" if interrupted else "failed"
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
    except Exception as rec_exc:  # the original error matters more than a failed bookkeeping write
        log.info("run %s: its failure was not recorded (%s); `nightscore runs --reap` will", state.run_id, str(rec_exc).splitlines()[0])
    else:
        try:
            _write_manifest(settings, state, eng, status=status, error=message)
        except Exception as man_exc:  # the store may be what failed; the ledger has it all
            log.info("run %s: its manifest was not written (%s)", state.run_id, str(man_exc).splitlines()[0])
    shutil.rmtree(settings.home / "work" / state.run_id, ignore_errors=True)
    for e in {id(exc): exc, id(error): error}.values():
        try:
            e._nightscore_recorded = True  # type: ignore[attr-defined]
        except AttributeError:
            pass
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


def begin(
    settings: Settings,
    job: str,
    ds: date,
    *,
    model_version: int | None = None,
    dry_run: bool = False,
    airflow_run_id: str | None = None,
) -> RunState:
    """Create the run record and resolve the model (failing fast if there is none); dead runs are reaped first."""
    from pipeline.reap import reap_quietly  # reap imports publish, which this module imports only when publishing

    spec = load_job(settings.jobs_dir, job)
    eng = db.ready_engine(settings)
    store = open_store(settings)
    reap_quietly(settings, eng)
    run_id = str(uuid.uuid4())
    state = RunState(run_id, job, ds.isoformat(), run_prefix(job, ds.isoformat(), run_id), dry_run, model_version, airflow_run_id)
    runs.start(eng, run_id, job, ds, dry_run=dry_run, airflow_run_id=airflow_run_id, artifacts_uri=store.uri(state.prefix))
    with _stage(settings, state, "resolve_model") as ctx:
        mv = registry.resolve(ctx.eng, spec.model.name, spec.model.alias, model_version)
        state.model_name, state.model_version, state.model_sha256 = mv.name, mv.version, mv.sha256
        runs.update(ctx.eng, run_id, model_name=mv.name, model_version=mv.version, model_sha256=mv.sha256)
    return state


def extract_step(settings: Settings, state: RunState) -> RunState:
    from pipeline.extract import extract

    with _stage(settings, state, "extract") as ctx:
        _record_extract(ctx, extract(settings, ctx.spec, state.day, ctx.store, state.prefix, ctx.workdir))
    return state


def _record_extract(ctx: _Ctx, ex: Extracted) -> None:
    state = ctx.state
    state.features_uri, state.features_sha256 = ex.uri, ex.sha256
    state.counts["extracted"] = ex.rows
    runs.update(ctx.eng, state.run_id, rows_extracted=ex.rows)


def validate_step(settings: Settings, state: RunState) -> RunState:
    """Run the contract's GX suites batch by batch; save the result (JSON + Data Docs) and any quarantine."""
    from pipeline.validate import validate_parquet

    with _stage(settings, state, "validate") as ctx:
        assert state.features_uri, "extract must run first"
        with ctx.store.local_path(ctx.store.key(state.features_uri)) as path:
            outcome = validate_parquet(ctx.spec, path, settings.validate_batch_rows)
        _record_validation(ctx, outcome)
    return state


def extract_validate_step(settings: Settings, state: RunState, *, score_meanwhile: bool = False) -> RunState:
    """``extract_step`` then ``validate_step`` in one pass, as ``score_partition`` runs them.

    Each batch read from the source is written to ``features.parquet`` and handed to a GX thread that
    validates it meanwhile, in runs of ``validate_batch_rows`` as the rows arrive, instead of validation
    reading the file back afterwards. Same files, counts and outcome as the two steps; a failure is
    recorded against the stage it happened in. The validate stage's seconds are what it took after the
    extract (and, with ``score_meanwhile``, the scoring) finished.

    With ``score_meanwhile``, the snapshot is also scored while validation finishes (see
    :func:`_score_early`); ``state.predictions_uri`` is then set unless that score had to be dropped.
    """
    from concurrent.futures import ThreadPoolExecutor

    from pipeline.extract import extract
    from pipeline.feed import BatchFeed

    feed = BatchFeed()
    spec = load_job(settings.jobs_dir, state.job)
    early: Scored | None = None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="nightscore-validate") as pool:
        validating = pool.submit(_validate_feed, spec, feed, settings.validate_batch_rows)
        try:
            with _stage(settings, state, "extract") as ctx:
                _record_extract(ctx, extract(settings, ctx.spec, state.day, ctx.store, state.prefix, ctx.workdir, feed=feed))
        except BaseException:
            feed.abort()
            raise
        feed.close()
        started = time.perf_counter()
        if score_meanwhile:
            early = _score_early(settings, state)
        with _stage(settings, state, "validate") as ctx:
            outcome = validating.result()
            if outcome.rows != state.counts["extracted"]:  # cannot happen unless a batch went missing
                raise RuntimeError(f"validated {outcome.rows} rows of the {state.counts['extracted']} extracted")
            _record_validation(ctx, outcome)
    if early is not None:
        if state.counts.get("quarantined"):  # those rows were scored too: score again without them
            Path(early.uri).unlink(missing_ok=True)
        else:
            with _stage(settings, state, "score", started=started) as ctx:
                _record_score(ctx, early)
    return state


def _score_early(settings: Settings, state: RunState) -> Scored | None:
    """Score the complete snapshot while the GX thread finishes its last rows, into the run's work folder.

    Validation's tail (its last GX run, the day suite, Data Docs) keeps one core busy, the model's threads
    use the other. At 1,000,000 rows, with the whole million in one GX run after the extract: end to end
    5.0-5.4 s against 5.3-5.8 s with two half runs, one of them during the extract, and 5.1-5.7 s with
    scoring after validation. The file is stored only if validation then passes with nothing quarantined;
    a failed validation removes it with the work folder. Any error here only means scoring runs again,
    as its own stage, after validation."""
    try:
        return _score_snapshot(_Ctx(settings, state), [])
    except Exception:
        log.info("run %s: scoring during validation failed; scoring again after it", state.run_id, exc_info=True)
        return None


def _validate_feed(spec: JobSpec, feed: BatchFeed, batch_rows: int) -> ValidationOutcome:
    from pipeline.feed import rebatched
    from pipeline.validate import validate_batches

    try:
        return validate_batches(spec, feed.schema(), rebatched(feed, batch_rows))
    finally:
        feed.stop()


def _record_validation(ctx: _Ctx, outcome: ValidationOutcome) -> None:
    """Save the result (JSON + Data Docs) and any quarantine, update the run, raise if it failed."""
    from pipeline.validate import raise_if_failed

    state = ctx.state
    state.validation_uri = ctx.store.put_bytes(
        f"{state.prefix}/validation.json", json.dumps(outcome.report(), indent=2, default=str).encode()
    )
    state.data_docs_uri = ctx.store.put_bytes(f"{state.prefix}/data_docs/index.html", outcome.html.encode())
    state.counts["quarantined"] = outcome.rows_quarantined if outcome.passed else 0
    state.counts["valid"] = outcome.rows - state.counts["quarantined"] if outcome.passed else 0
    if outcome.passed and outcome.quarantined:
        assert state.features_uri
        with ctx.store.local_path(ctx.store.key(state.features_uri)) as path:
            values = _quarantined_values(path, ctx.spec.entity_key, list(outcome.quarantined))
        runs.save_quarantine(ctx.eng, state.run_id, state.job, state.day, outcome.quarantined, values)
        ctx.store.put_bytes(f"{state.prefix}/quarantined_keys.json", json.dumps(sorted(map(str, outcome.quarantined))).encode())
        log.warning("run %s (%s %s): %s", state.run_id, state.job, state.ds, outcome.message)
    runs.update(
        ctx.eng,
        state.run_id,
        validation_success=outcome.success,
        validation_summary={"passed": outcome.passed, "message": outcome.message, "failed_rules": outcome.summary()},
        validation_report_uri=state.validation_uri,
        data_docs_uri=state.data_docs_uri,
        rows_valid=state.counts["valid"],
        rows_quarantined=state.counts["quarantined"],
    )
    raise_if_failed(outcome, ctx.spec, where=f"job {state.job}, ds {state.ds}, report {state.validation_uri}")


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


def _model(ctx: _Ctx) -> tuple[ModelVersion, Any]:
    """The run's model version and its booster (checksum verified)."""
    assert ctx.state.model_version is not None, "the model is resolved when the run begins"
    mv = registry.get_version(ctx.eng, ctx.spec.model.name, ctx.state.model_version)
    return mv, registry.load_booster(ctx.store, mv)


def _score_snapshot(ctx: _Ctx, drop_keys: list[Any]) -> Scored:
    """The run's snapshot, less ``drop_keys``, through its model into the work folder (not stored yet)."""
    from pipeline.score import score

    state = ctx.state
    assert state.features_uri, "extract must run first"
    mv, booster = _model(ctx)
    with ctx.store.local_path(ctx.store.key(state.features_uri)) as path:
        if drop_keys:  # keys were saved as text; match the column's own type
            key_type = pq.ParquetFile(path).schema_arrow.field(ctx.spec.entity_key).type
            drop_keys = pa.array(drop_keys).cast(key_type).to_pylist()
        return score(
            ctx.spec,
            state.day,
            path,
            booster,
            mv,
            state.run_id,
            ctx.workdir / "predictions.parquet",
            threads=ctx.settings.threads,
            batch_rows=ctx.settings.batch_rows,
            drop_keys=drop_keys,
        )


def _record_score(ctx: _Ctx, sc: Scored) -> None:
    """Store the scored file as the run's predictions.parquet and count its rows."""
    ctx.state.predictions_uri = ctx.store.put_file(f"{ctx.state.prefix}/predictions.parquet", Path(sc.uri))
    ctx.state.counts["scored"] = sc.rows
    runs.update(ctx.eng, ctx.state.run_id, rows_scored=sc.rows)


def score_step(settings: Settings, state: RunState) -> RunState:
    with _stage(settings, state, "score") as ctx:
        drop: list[Any] = []
        if state.counts.get("quarantined"):
            drop = json.loads(ctx.store.get_bytes(f"{state.prefix}/quarantined_keys.json"))
        _record_score(ctx, _score_snapshot(ctx, drop))
    return state


def publish_step(settings: Settings, state: RunState) -> RunState:
    from pipeline.publish import publish

    with _stage(settings, state, "publish") as ctx:
        assert state.predictions_uri
        if state.dry_run:
            state.counts["published"] = 0
            log.info("dry run: %s rows scored for %s %s, nothing published", state.counts.get("scored"), state.job, state.ds)
        else:
            with ctx.store.local_path(ctx.store.key(state.predictions_uri)) as path:
                pub = publish(settings, state.job, state.day, path, state.run_id)  # marks the run published
            state.counts["published"] = pub.rows
            return state
        runs.update(ctx.eng, state.run_id, rows_published=0)
    return state


def finish_step(settings: Settings, state: RunState) -> RunState:
    """Monitor drift, write the manifest (last), and mark the run succeeded."""
    from pipeline.monitor import drift_report

    with _stage(settings, state, "monitor") as ctx:
        assert state.predictions_uri

        def monitor_and_record() -> None:
            with ctx.store.local_path(ctx.store.key(state.predictions_uri or "")) as path:
                state.drift = drift_report(ctx.store, ctx.eng, ctx.spec, state.model_version, path)
            state.manifest_uri = _write_manifest(settings, state, ctx.eng, status="succeeded")
            runs.finish(ctx.eng, state.run_id, "succeeded", drift=state.drift, manifest_uri=state.manifest_uri, error=None)

        _retrying(monitor_and_record, f"run {state.run_id}: monitor and manifest")
        shutil.rmtree(ctx.workdir, ignore_errors=True)
    return state


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
) -> RunState:
    """Extract, validate, score and publish one (job, ds) partition. Idempotent: rerun at will.

    Extract and validation run in one pass, and scoring starts while validation finishes
    (:func:`extract_validate_step`); the Airflow DAG runs the same steps one task each."""
    with _no_full_collections(), interruptible():
        state = begin(settings, job, ds, model_version=model_version, dry_run=dry_run, airflow_run_id=airflow_run_id)
        try:
            with runs.owned(db.engine(settings), state.run_id, "extract", every=settings.heartbeat_s):
                state = extract_validate_step(settings, state, score_meanwhile=True)
                if state.predictions_uri is None:
                    state = score_step(settings, state)
                for step in (publish_step, finish_step):
                    state = step(settings, state)
        except BaseException as exc:  # between stages (a signal, a lost connection): record it all the same
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
