"""``python -m pipeline.cli``: the ``nightscore`` command (the fault-injection tests start runs this way)."""

from __future__ import annotations

from pipeline.cli import main

if __name__ == "__main__":  # pragma: no cover
    main()
