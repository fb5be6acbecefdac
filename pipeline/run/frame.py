"""The stage frame: what wraps every stage of a run, for the day and for each shard.

A stage gets a :class:`StageContext` (settings, the job spec, the database engine, the artifact store, its
work folder), has its seconds recorded in the ledger, and on failure records the failure once (the run
marked failed or interrupted, its manifest written, its loading table dropped, its work folder removed)
and leaves as one :class:`~pipeline.errors.NightscoreError` paragraph. :func:`interruptible` turns SIGTERM
and SIGINT into :class:`~pipeline.errors.Interrupted`; :func:`retrying` retries what the store or the
database failed for a moment.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline import db, failpoints, runs
from pipeline.config import Settings
from pipeline.errors import Interrupted, NightscoreError, explain
from pipeline.jobs import JobSpec, load_job
from pipeline.metrics import export as export_metrics
from pipeline.run.artifacts import write_manifest
from pipeline.run.state import RunState, ShardState, run_state_of
from pipeline.storage import ArtifactStore, open_store

log = logging.getLogger(__name__)


class StageContext:
    """What every stage needs, built once per stage from settings."""

    def __init__(self, settings: Settings, job: str, workdir: Path) -> None:
        self.settings = settings
        self.spec: JobSpec = load_job(settings.jobs_dir, job)
        self.eng = db.ready_engine(settings)
        self.store: ArtifactStore = open_store(settings)
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)


def run_workdir(settings: Settings, run_id: str) -> Path:
    return settings.home / "work" / run_id


def shard_workdir(settings: Settings, shard: ShardState) -> Path:
    return run_workdir(settings, shard.run_id) / f"shard-{shard.index:03d}"


@contextmanager
def run_stage(settings: Settings, state: RunState, name: str) -> Iterator[StageContext]:
    """One stage of the run as a whole, worked on by this process (owner and heartbeat in the ledger): its
    seconds recorded, and on failure the run marked failed (or interrupted), its manifest written, its
    loading table dropped and its work folder removed. Any error leaves as a :class:`NightscoreError`
    paragraph, the original exception as its cause."""
    t0 = time.perf_counter()
    ctx: StageContext | None = None
    try:
        ctx = StageContext(settings, state.job, run_workdir(settings, state.run_id))
        with runs.owned(ctx.eng, state.run_id, name, every=settings.heartbeat_s):
            failpoints.reached(name)
            yield ctx
    except BaseException as exc:
        error = record_failure(settings, state, name, exc, ctx)
        if error is not exc:
            raise error from exc
        raise
    finally:
        state.seconds[name] = round(time.perf_counter() - t0, 4)
        state.spans[name] = _span(state.seconds[name])
        if ctx is not None:
            try:
                runs.stage_seconds(ctx.eng, state.run_id, name, state.seconds[name])
            except Exception as exc:
                log.info("run %s: stage timing not recorded (%s)", state.run_id, str(exc).splitlines()[0])


def _span(seconds: float) -> list[float]:
    """A stage that just ended after ``seconds``: its [start, end] in Unix time (the run report's timeline)."""
    end = time.time()
    return [round(end - seconds, 4), round(end, 4)]


def is_interruption(exc: BaseException) -> bool:
    return isinstance(exc, KeyboardInterrupt | Interrupted) or type(exc).__name__ == "AirflowTaskTerminated"


def explained(exc: BaseException, stage: str, where: str) -> tuple[BaseException, str, str]:
    """What to raise for ``exc`` (a signal as it is, anything else as one paragraph), the message to
    record, and the status (``interrupted`` or ``failed``)."""
    if is_interruption(exc):
        return exc, f"{exc}; the published data was left as it was", "interrupted"
    error = explain(exc, stage=stage, where=where)
    return error, str(error), "failed"


def tag_recorded(exc: BaseException, error: BaseException, **marks: Any) -> None:
    """Mark the original exception and the one raised for it as recorded (set on both, once each)."""
    for e in {id(exc): exc, id(error): error}.values():
        for k, v in marks.items():
            try:
                setattr(e, k, v)
            except AttributeError:
                pass


def record_failure(settings: Settings, state: RunState, name: str, exc: BaseException, ctx: StageContext | None) -> BaseException:
    """Record the failure of stage ``name`` once (ledger, manifest, loading table, work folder); return what
    to raise. A shard's failure names its shard and stage (``[shard 2/4 validate]``).

    A run whose swap committed stays ``published``: the error is recorded beside it. Everything here works
    on fresh connections and never masks ``exc``: what it cannot record, the reaper records later."""
    if getattr(exc, "_nightscore_recorded", False):
        return exc
    name = getattr(exc, "_nightscore_stage", None) or name
    error, message, status = explained(exc, name, f"job {state.job}, ds {state.ds}")
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
            write_manifest(settings, state, eng, status=status, error=message)
        except Exception as man_exc:  # the store may be what failed; the ledger has it all
            log.info("run %s: its manifest was not written (%s)", state.run_id, str(man_exc).splitlines()[0])
        if not state.dry_run:
            export_metrics(settings, state.job, eng)
    if status != "published" and state.loading_table and eng is not None:
        from pipeline.publish import drop_loading_table

        drop_loading_table(eng, state.loading_table)
    shutil.rmtree(run_workdir(settings, state.run_id), ignore_errors=True)
    tag_recorded(exc, error, _nightscore_recorded=True)
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


@contextmanager
def shard_stage(
    settings: Settings, shard: ShardState, name: str, started: float | None = None, cpu_before: float = 0.0
) -> Iterator[StageContext]:
    """One stage of one shard: its seconds recorded in ``run_shards`` (from ``started`` when the work began
    earlier; ``cpu_before``: CPU seconds that earlier work took); on failure the shard and the run marked
    failed (or interrupted) with the shard and stage named, and the shard's work folder removed."""
    t0 = time.perf_counter() if started is None else started
    c0 = time.process_time() - cpu_before
    ctx: StageContext | None = None
    try:
        ctx = StageContext(settings, shard.job, shard_workdir(settings, shard))
        runs.update_shard(ctx.eng, shard.run_id, shard.index, stage=name)
        if shard.shards == 1:
            runs.update(ctx.eng, shard.run_id, stage=name)
        failpoints.reached(name)
        yield ctx
    except BaseException as exc:
        error = shard_failure(settings, shard, name, exc, ctx)
        if error is not exc:
            raise error from exc
        raise
    finally:
        shard.seconds[name] = round(time.perf_counter() - t0, 4)
        shard.spans[name] = _span(shard.seconds[name])
        shard.cpu[name] = round(shard.cpu.get(name, 0.0) + time.process_time() - c0, 4)
        if ctx is not None:
            try:
                runs.update_shard(ctx.eng, shard.run_id, shard.index, seconds={name: shard.seconds[name]})
            except Exception as exc:
                log.info("run %s: shard timing not recorded (%s)", shard.run_id, str(exc).splitlines()[0])


def shard_failure(settings: Settings, shard: ShardState, name: str, exc: BaseException, ctx: StageContext | None) -> BaseException:
    """Record a shard's failure in its ``run_shards`` row and on the run (the day cannot be published
    without it), write the run's manifest and remove the shard's work folder; return what to raise."""
    if getattr(exc, "_nightscore_shard_recorded", False):
        return exc
    label = f"{shard.label} {name}".strip()
    error, message, status = explained(exc, name, shard.where)
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
            write_manifest(settings, run_state_of(runs.get(eng, shard.run_id) or {}, shard), eng, status=status, error=message)
            export_metrics(settings, shard.job, eng)
    except Exception as rec_exc:
        log.info("run %s: the failure of %s was not recorded (%s)", shard.run_id, label, str(rec_exc).splitlines()[0])
    shutil.rmtree(shard_workdir(settings, shard), ignore_errors=True)
    tag_recorded(exc, error, _nightscore_shard_recorded=True, _nightscore_stage=label)
    return error


def retrying(fn: Any, what: str, attempts: int = 3, pause: float = 1.0) -> None:
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
