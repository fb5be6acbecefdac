"""The local runner: a whole day on this machine (what ``nightscore score`` runs). One shard runs in this
process; several run in forked worker processes (:mod:`pipeline.shards`), a worker that dies retried alone;
then one publish and the finish, as the Airflow DAG runs the same steps as tasks."""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

from pipeline import db, runs, shards
from pipeline.config import Settings
from pipeline.run.day import begin, finish_step, gather, publish_step
from pipeline.run.frame import interruptible, record_failure
from pipeline.run.shard import shard_step
from pipeline.run.state import RunState

log = logging.getLogger(__name__)


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
    shadow: list[int | str] | None = None,
) -> RunState:
    """Extract, validate, score and publish one (job, ds) partition: its shards in worker processes here,
    then one publish. Idempotent: rerun at will. The Airflow DAG runs the same steps, one task each and
    the shards as mapped tasks. ``shadow``: shadow models instead of the spec's ``model.shadow``."""
    with _no_full_collections(), interruptible():
        state = begin(
            settings,
            job,
            ds,
            model_version=model_version,
            dry_run=dry_run,
            airflow_run_id=airflow_run_id,
            shard_count=shard_count,
            shadow=shadow,
        )
        try:
            state = run_shards(settings, state, workers=workers)
            with runs.owned(db.engine(settings), state.run_id, "publish", every=settings.heartbeat_s):
                for step in (publish_step, finish_step):
                    state = step(settings, state)
        except BaseException as exc:  # a shard, or between stages (a signal, a lost connection): record it all the same
            error = record_failure(settings, state, "run", exc, None)
            if error is not exc:
                raise error from exc
            raise
    return state


def run_shards(settings: Settings, state: RunState, *, workers: int | None = None, retries: int = 1) -> RunState:
    """Every shard of the run on this machine: one in this process, several in ``workers`` forked worker
    processes (default: one per core), the model's threads shared out among them. A worker that dies (killed,
    out of memory) is retried alone, at most ``retries`` times; a shard that fails with an error fails the
    day, after the shards already running have finished."""
    eng = db.ready_engine(settings)
    if state.shards == 1:
        with runs.owned(eng, state.run_id, "shard", every=settings.heartbeat_s):
            shard_step(settings, state, 0)
        return gather(settings, state)
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
    return gather(settings, state)


def _shard_worker(settings: Settings, state: dict[str, Any], threads: int, index: int, attempt: int) -> None:
    """The body of a shard's worker process."""
    shard_step(settings, RunState.from_dict(state), index, threads=threads)


def _preload_stage_modules() -> None:
    """Import what every shard uses before forking (the forkserver's list): each worker then starts with
    them, at no cost."""
    import importlib

    for module in shards.PRELOAD:
        importlib.import_module(module)
    from pipeline.validate import gx_context

    gx_context()  # GX's registry of expectations, built once


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
