"""Named pause points for the fault-injection tests (``tests/faults/``), off unless asked for.

With ``NIGHTSCORE_FAILPOINT=<name>`` and ``NIGHTSCORE_FAILPOINT_FILE=<path>`` set, the run writes its pid
to ``<path>`` when it reaches the point ``<name>`` and waits there (at most 5 minutes) until ``<path>.go``
exists. The test meanwhile kills the process, stops the server or takes the S3 endpoint away, at a moment
it knows. The points: ``extract``, ``streaming`` (a streamed shard's first batch scored and on its way to the loading
table), ``validate``, ``score``, ``load``, ``loaded`` (a shard's rows in the loading
table, the shard not yet marked loaded), ``publish``, ``index``, ``swap`` (inside the swap's transaction, its
locks held), ``monitor``. Without the variables a point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from pipeline import config


def reached(name: str) -> None:
    if config.failpoint() != name:
        return
    marker = config.failpoint_file()
    go = Path(f"{marker}.go")
    marker.write_text(str(os.getpid()))
    deadline = time.monotonic() + 300
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
