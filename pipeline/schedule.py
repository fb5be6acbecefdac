"""Which day a run scores, from what the scheduler knows about the run (no Airflow import here).

The rule, also in the README ("Which day does a run score?"):

1. A ``ds`` given by a person (the trigger form's Param, ``--ds`` on the CLI) wins, except in a backfill:
   a backfill over [A, B] scores exactly the days A..B, one per run, so a ``ds`` there is an error.
2. Otherwise the run's logical date decides, read in the job's timezone. The scoring DAGs use a cron
   *data-interval* timetable, so a scheduled or backfill run for day D has the logical date D 00:00 and the
   data interval [D 00:00, D+1 00:00), and starts once that day is over. A manual run given a logical date
   (``airflow dags test score_churn 2026-03-15``, or the date field of the trigger form) scores that day.
3. A manual run with no logical date (Airflow 3's default for the Trigger button) has no data interval:
   it scores the latest complete day, the day before ``run_after`` in the job's timezone.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from pipeline.errors import NightscoreError
from pipeline.jobs import parse_ds


def latest_complete_day(now: datetime, tz: str) -> date:
    """The last whole day before ``now`` in timezone ``tz``."""
    return now.astimezone(ZoneInfo(tz)).date() - timedelta(days=1)


def resolve_ds(
    *,
    tz: str,
    param_ds: str | date | None,
    run_type: str | None,
    logical_date: datetime | None,
    run_after: datetime,
) -> tuple[date, str]:
    """Return the day to score and a short sentence saying why (for the task log)."""
    if param_ds not in (None, ""):
        if str(run_type or "").lower().endswith("backfill"):
            raise NightscoreError(
                f"a backfill run was given ds={param_ds}",
                where="the backfill's run configuration (dag_run_conf)",
                fix="leave ds empty in a backfill: each backfill run scores the day of its own data interval",
            )
        day = param_ds if isinstance(param_ds, date) else parse_ds(str(param_ds), where="the ds parameter")
        return day, f"ds {day} from the run's ds parameter"
    if logical_date is not None:
        day = logical_date.astimezone(ZoneInfo(tz)).date()
        return day, f"ds {day} from the run's logical date {logical_date.isoformat()}"
    day = latest_complete_day(run_after, tz)
    return day, f"ds {day}: the latest complete day before {run_after.isoformat()} ({tz}), as the run has no logical date"
