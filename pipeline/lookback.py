"""Looking back over a job's published days: the delayed-label evaluations ``nightscore evaluate`` asks for,
and the HTML report ``nightscore report`` writes over a window of days.

"Today" and the default last day are the job's, in its time zone (:func:`pipeline.schedule.job_today`,
:func:`pipeline.schedule.default_day`), never the machine's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pipeline.config import Settings
from pipeline.evaluate import DayEvaluation, evaluate_day, evaluate_matured
from pipeline.evaluate import matured_window as evaluate_window
from pipeline.jobs import JobSpec
from pipeline.schedule import default_day, job_today


def evaluate(
    settings: Settings, spec: JobSpec, ds: date | None = None, *, early: bool = False, today: date | None = None
) -> list[DayEvaluation]:
    """Evaluate the published day ``ds`` (``early``: before its outcomes have matured), or, without ``ds``,
    every matured day not yet evaluated; ``today`` defaults to the day in progress in the job's time zone. The
    job's metrics are exported after any evaluation (:func:`pipeline.metrics.export`)."""
    from pipeline.metrics import export

    today = today or job_today(spec.timezone)
    found = [evaluate_day(settings, spec, ds, today=today, early=early)] if ds is not None else evaluate_matured(settings, spec, today)
    if found:  # every command that computes a result exports it: the CLI's evaluate as the Airflow task
        export(settings, spec.name)
    return found


def matured_window(spec: JobSpec, today: date | None = None) -> tuple[date, date] | None:
    """The first and last published day whose outcomes have matured by ``today`` within the spec's lookback
    (what an evaluation without a day looks at); None when the spec has no evaluation block."""
    if spec.evaluation is None:
        return None
    return evaluate_window(spec, today or job_today(spec.timezone))


@dataclass(frozen=True)
class ReportWritten:
    """The job report written: where, which days, the report's summary, and the latest evaluated day in one
    phrase by the model's kind (None when no day of the range is evaluated)."""

    path: Path
    first: date
    last: date
    summary: dict[str, Any]
    latest: str | None = None


def report_path(settings: Settings, job: str, last: date, days: int) -> Path:
    """The report's default file: ``<home>/reports/<job>-<last>-<days>d.html``."""
    return settings.home / "reports" / f"{job}-{last}-{days}d.html"


def write_report(settings: Settings, spec: JobSpec, days: int, *, last: date | None = None, path: Path | None = None) -> ReportWritten:
    """Write the HTML report of ``spec`` ending ``last`` (default: the latest complete day in the job's time
    zone) to ``path`` (default: :func:`report_path`). Its window reaches back ``days`` plus the job's
    ``evaluation.mature_days``, so that ``days`` days with matured outcomes are in its performance section."""
    from pipeline import db
    from pipeline.evaluate import history
    from pipeline.report import job_report
    from pipeline.report_kinds import latest_line

    last = last if last is not None else default_day(spec.timezone)
    path = path or report_path(settings, spec.name, last, days)
    first = last - timedelta(days=days + spec.mature_days - 1)
    summary = job_report(settings, spec, first, last, path)
    latest = latest_line(history(db.ready_engine(settings), spec.name, first, last)) if summary.get("evaluations") else None
    return ReportWritten(path, first, last, summary, latest)
