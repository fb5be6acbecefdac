"""nightscore: scheduled batch inference, one (job, day) partition at a time.

The package holds every stage as a plain function (no Airflow import anywhere), so the CLI,
the tests and the Airflow DAGs all run the same code.
"""

from __future__ import annotations

__version__ = "0.1.0"
