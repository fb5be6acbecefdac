"""The Celery workers' configuration (``[celery] celery_config_options``): Airflow's own, unchanged, and a
worker that imports the pipeline's heavy modules once, before its pool starts.

On Linux Airflow 3 runs each task in a process forked from the Celery pool process that took it, so a
module the worker imported before forking its pool costs the task nothing. Left to the task, every shard
task imported Great Expectations again: 4 s of CPU here, more than scoring a 20,000-row day. Only imports
happen before the fork; no thread pool of XGBoost or Arrow has run in the worker, so the forked tasks start
theirs afresh. The scheduler and the api-server import this module too (to build the Celery app), but only a
worker sends ``worker_init``, so they import nothing more. ``NIGHTSCORE_WARM_WORKERS=0`` turns it off: every
task then imports the pipeline afresh, and an edit of ``pipeline/`` reaches the next task without restarting
the worker (with it on, restart the worker after an edit).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
from celery.signals import worker_init

CELERY_CONFIG = DEFAULT_CELERY_CONFIG  # the same object: Airflow applies nothing on top of its defaults

log = logging.getLogger(__name__)

# what a scoring, training or evaluation task imports, heaviest first
WARM_MODULES = (
    "great_expectations",
    "xgboost",
    "pandas",
    "pyarrow.parquet",
    "pipeline.validate",
    "pipeline.extract",
    "pipeline.score",
    "pipeline.publish",
    "pipeline.drift",
    "pipeline.explain",
    "pipeline.run.shard",
    "pipeline.train",
    "nightscore_airflow.tasks",
)


@worker_init.connect
def warm(**_: Any) -> None:
    """Import :data:`WARM_MODULES` in the worker's main process (before the pool forks); a module that fails
    to import is logged and left to the task, which then fails with the real error where it can be read."""
    import importlib
    import os

    if os.environ.get("NIGHTSCORE_WARM_WORKERS", "1").strip().lower() in ("0", "false", "no"):
        log.info("nightscore: NIGHTSCORE_WARM_WORKERS=%s: each task imports the pipeline itself", os.environ["NIGHTSCORE_WARM_WORKERS"])
        return
    started = time.perf_counter()
    for name in WARM_MODULES:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001  (the task imports it again and reports it)
            log.warning("nightscore: could not import %s in the Celery worker ahead of its tasks: %s", name, exc)
    log.info("nightscore: the pipeline's modules imported in the Celery worker in %.1f s", time.perf_counter() - started)
