"""
# Job specs that do not load: one Airflow import error for them, every other job's DAGs unaffected

The DAG factories (`score_jobs.py`, `train_jobs.py`, `evaluate_jobs.py`) build the DAGs of every spec in
`dags/jobs/` that loads and skip those that do not. This file is where the skipped ones show: if any spec
fails to load, parsing it raises one error naming each file, the field and the fix, which Airflow lists
under *DAG Import Errors* (and `airflow dags list-import-errors`). It defines no DAG (Airflow's safe mode
parses a file that mentions both "airflow" and "dag", as this docstring does).
"""

from __future__ import annotations

from pathlib import Path

from nightscore_airflow.connections import use_jobs_dir
from pipeline.jobs import load_each

_, _errors = load_each(use_jobs_dir(Path(__file__).resolve().parent / "jobs"))
if _errors:
    raise ImportError(
        f"{len(_errors)} job spec(s) could not be loaded; every other job's DAGs load as usual:\n"
        + "\n".join(f"- {e}" for e in _errors)
    )
