"""One scoring run of a (job, ds) partition: a ``scoring_runs`` row, its shards, one publish.

A run splits its day into shards (:mod:`pipeline.shards`: a stable hash of the entity key, computed by
PostgreSQL). Each shard extracts, validates, scores and loads its own rows into the run's loading table,
and records itself in ``run_shards``; a shard can be retried alone, replacing what it loaded before. The
day is then checked as a whole (row count, bad-row share, counts that add up) and published in one atomic
swap. ``shards: 1`` is the same path with one shard.

The steps take and return small JSON-friendly states (what Airflow tasks pass on through XCom); data moves
as Parquet through the artifact store. Where each part lives:

- :mod:`pipeline.run.state`: :class:`RunState` (the day) and :class:`ShardState` (one shard);
- :mod:`pipeline.run.frame`: the stage frame (context, timing, failure recording, signals, retries);
- :mod:`pipeline.run.day`: :func:`begin`, :func:`publish_step`, :func:`finish_step`;
- :mod:`pipeline.run.shard`: :func:`shard_step`, one shard end to end (a worker process here, a mapped
  task in Airflow);
- :mod:`pipeline.run.artifacts`: the manifest (written last), the reports, the drift rows;
- :mod:`pipeline.run.local`: :func:`score_partition`, every step on this machine, the shards in worker
  processes.

A failing step marks the run failed with its message and re-raises; published data is untouched.
"""

from __future__ import annotations

from pipeline.errors import ShardsFailed
from pipeline.run.day import begin, finish_step, gather, publish_step
from pipeline.run.frame import interruptible
from pipeline.run.local import run_shards, score_partition
from pipeline.run.shard import extract_shard, extract_validate, load_shard, open_shard, score_shard, shard_step
from pipeline.run.state import RunState, ShardState, shard_state

__all__ = [
    "RunState",
    "ShardState",
    "ShardsFailed",
    "begin",
    "extract_shard",
    "extract_validate",
    "finish_step",
    "gather",
    "interruptible",
    "load_shard",
    "open_shard",
    "publish_step",
    "run_shards",
    "score_partition",
    "score_shard",
    "shard_state",
    "shard_step",
]
