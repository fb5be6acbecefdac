"""Logging for nightscore's own processes: the CLI and the shards' worker processes.

Warnings go to the terminal; everything from INFO up, tracebacks included, to
``$NIGHTSCORE_HOME/logs/nightscore.log``. Inside Airflow the task log takes everything instead.
"""

from __future__ import annotations

import logging


def setup_logging() -> logging.Handler | None:
    """Set up the root logger once; return the log file's handler (None if the file cannot be opened)."""
    root = logging.getLogger()
    if hasattr(root, "_nightscore"):  # set up already: the file's handler, or None
        return root._nightscore  # type: ignore[attr-defined, no-any-return]
    root._nightscore = None  # type: ignore[attr-defined]
    root.setLevel(logging.INFO)
    terminal = logging.StreamHandler()
    terminal.setLevel(logging.WARNING)
    terminal.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(terminal)
    # a connection that died is reported once, in the error paragraph, not as the pool's traceback
    logging.getLogger("sqlalchemy.pool").setLevel(logging.CRITICAL)
    try:
        from pipeline.config import load_settings

        logs = load_settings().home / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        file = logging.FileHandler(logs / "nightscore.log")
    except Exception:  # a bad setting is reported by the command itself
        return None
    file.setLevel(logging.INFO)
    file.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"))
    root.addHandler(file)
    root._nightscore = file  # type: ignore[attr-defined]
    return file
