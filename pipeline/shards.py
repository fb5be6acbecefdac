"""Shards: a day split by a stable hash of the entity key, so that each part can be worked on alone.

Shard ``i`` of ``n`` holds the rows whose key hashes to ``i``: the first 32 bits of the MD5 of the key's text,
modulo ``n``. The hash is computed by PostgreSQL, where the data is (each shard reads only its rows, through
its own query and stream), and the same in Python (:func:`shard_of`) and in the loading table (a retried
shard deletes exactly its earlier rows). MD5 of the text never changes between PostgreSQL versions, so one
entity is always in the same shard of ``n``; key uniqueness is therefore a per-shard rule.

:func:`run_in_processes` runs the shards of one day in worker processes on this machine (forked, so the
stage modules are imported once, before the fork; GX and our Python code hold the GIL, so threads would
not do). A worker that dies is retried alone; each shard's outcome is read from ``run_shards``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipeline.jobs import MAX_SHARDS

log = logging.getLogger(__name__)


def shard_of(key: Any, shards: int) -> int:
    """The shard of ``key`` among ``shards``: what :func:`shard_sql` selects in PostgreSQL."""
    return int(hashlib.md5(str(key).encode()).hexdigest()[:8], 16) % shards


def shard_expr(key_sql: str, shards: int) -> str:
    """SQL for the shard of a key, given the SQL of its text (:func:`pipeline.keys.key_sql`), among ``shards``."""
    return f"mod(('x' || substr(md5({key_sql}), 1, 8))::bit(32)::bigint, {int(shards)})"


def subquery(source_sql: str) -> str:
    """The job's query as a subquery ``(...) AS nightscore_source``, to filter or probe it. Its final ``;``
    goes, and the newline before the closing parenthesis ends a trailing ``--`` comment."""
    return f"(\n{source_sql.strip().rstrip(';').rstrip()}\n) AS nightscore_source"


def shard_sql(source_sql: str, key: str | list[str], index: int, shards: int) -> str:
    """The source query limited to shard ``index`` of ``shards`` (the whole query when there is one shard): the
    rows whose key's text (one column, or several joined as :mod:`pipeline.keys` does) hashes to ``index``."""
    if shards == 1:
        return source_sql
    from pipeline.keys import key_sql

    # stays in code: it wraps the job's own query text (SQL, not a value) and names the key columns, quoted as
    # identifiers by key_sql; the index and count are int() literals (the whole text runs as one ADBC statement)
    columns = [key] if isinstance(key, str) else key
    return f"SELECT * FROM {subquery(source_sql)}\nWHERE {shard_expr(key_sql(columns, 'nightscore_source'), shards)} = {int(index)}"


def resolve(spec_value: int | str, override: int | None = None, cores: int | None = None) -> int:
    """The shard count for a run: the override (CLI, DAG parameter), else the spec's; ``auto`` is one per core."""
    value: int | str = override if override is not None else spec_value
    if value == "auto":
        return max(1, min(cores or os.cpu_count() or 1, MAX_SHARDS))
    return max(1, min(int(value), MAX_SHARDS))


def workers_for(shards: int, requested: int | None = None) -> int:
    """How many worker processes run the shards of a day here: NIGHTSCORE_WORKERS or one per core, at most one per shard."""
    return max(1, min(shards, requested or os.cpu_count() or 1))


_XGBOOST_RAN = [False]

# what a worker uses: imported once before the workers are forked, or by the forkserver that forks them
PRELOAD = ["pipeline.run", "pipeline.extract", "pipeline.validate", "pipeline.score", "pipeline.publish", "xgboost", "great_expectations"]


def xgboost_ran() -> None:
    """Note that XGBoost (and with it libgomp's OpenMP thread pool) has run in this process."""
    _XGBOOST_RAN[0] = True


def start_method() -> str:
    """How worker processes are started: forked from this process while that is safe (the stage modules
    already imported: nothing to pay); once XGBoost has run here, from a forkserver, because libgomp's
    thread pool does not survive a fork (the child hangs in its first parallel region)."""
    return "forkserver" if _XGBOOST_RAN[0] else "fork"


@dataclass
class Exit:
    index: int
    attempt: int
    code: int  # the worker's exit status: 0 fine, 1 an error it recorded, -N killed by signal N


def run_in_processes(
    indexes: list[int],
    target: Callable[..., None],
    args: tuple[Any, ...],
    *,
    workers: int,
    retries: int,
    done: Callable[[int], bool],
    tick: Callable[[], None] | None = None,
    tick_every: float = 10.0,
) -> dict[int, Exit]:
    """Run ``target(*args, index, attempt)`` for every index in worker processes, ``workers`` at a time.

    A worker whose shard is not ``done`` when it exits (an error, or killed) is started again, at most
    ``retries`` times; the others are not touched. ``tick`` runs every ``tick_every`` seconds meanwhile
    (the run's heartbeat: no thread runs in this process, so forking is safe). Returns the last exit of
    each index. On an exception here (SIGTERM, Ctrl-C) every worker still running is terminated first."""
    import multiprocessing
    from multiprocessing.connection import wait

    method = start_method()
    ctx: Any = multiprocessing.get_context(method)
    if method == "forkserver":
        ctx.set_forkserver_preload(PRELOAD)
    queue = [(i, 1) for i in indexes]
    running: dict[int, tuple[Any, int, int]] = {}  # sentinel -> (process, index, attempt)
    last: dict[int, Exit] = {}
    next_tick = time.monotonic() + tick_every
    try:
        while queue or running:
            while queue and len(running) < workers:
                index, attempt = queue.pop(0)
                proc = ctx.Process(
                    target=_worker, args=(target, (*args, index, attempt), dict(os.environ)), name=f"nightscore-shard-{index}"
                )
                proc.start()
                running[proc.sentinel] = (proc, index, attempt)
            for sentinel in wait(list(running), timeout=min(1.0, tick_every)):
                proc, index, attempt = running.pop(sentinel)  # type: ignore[arg-type]
                proc.join()
                code = proc.exitcode if proc.exitcode is not None else 1
                last[index] = Exit(index, attempt, code)
                if not done(index) and attempt <= retries and code != 1:
                    how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
                    log.warning("shard %d (try %d) %s; trying it again alone", index, attempt, how)
                    queue.append((index, attempt + 1))
            if tick is not None and time.monotonic() >= next_tick:
                tick()
                next_tick = time.monotonic() + tick_every
    except BaseException:
        for proc, _, _ in running.values():
            proc.terminate()
        for proc, _, _ in running.values():
            proc.join(30)
        raise
    return last


def _worker(target: Callable[..., None], args: tuple[Any, ...], environ: dict[str, str]) -> None:
    """A worker process: the parent's environment as it is now (a forkserver holds the one it started with),
    its own database connections, Ctrl-C left to the parent (which stops the workers), log records where
    the CLI sends them; exit 1 after an error the shard has recorded."""
    import sys

    os.environ.clear()
    os.environ.update(environ)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    from pipeline import db

    db.forget_inherited_engines()
    _log_like_the_cli()
    try:
        target(*args)
    except BaseException:  # the shard recorded its error in run_shards; the parent reads it there
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # no finalizers: a forked worker must not close the parent's inherited connections


def _log_like_the_cli() -> None:
    """A worker from a forkserver starts with no logging set up: warnings to the terminal and everything
    to the log file, as the CLI does. A forked one keeps its parent's handlers."""
    if logging.getLogger().handlers:
        return
    from pipeline.logsetup import setup_logging

    setup_logging()
