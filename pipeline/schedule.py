"""Which day a run scores, from what the scheduler knows about the run (no Airflow import here).

The rule, also in docs/airflow.md and the scoring DAG's docs:

1. A ``ds`` given by a person (the trigger form's Param, REST or CLI ``conf``, ``--ds`` on the CLI) wins,
   except in a backfill: a backfill over [A, B] scores exactly the days A..B, one per run, so a ``ds`` there
   is an error.
2. A scheduled or backfill run scores the day of its logical date, read in the job's timezone. The scoring
   DAGs use a cron *data-interval* timetable, so the run for day D has the logical date D 00:00 and the data
   interval [D 00:00, D+1 00:00), and starts once that day is over.
3. A manual run (UI, REST, CLI trigger, ``airflow dags test``) given a logical date scores that date's day
   if the day is over when the run starts (``airflow dags test score_churn 2026-03-15`` scores 2026-03-15).
   A logical date in a day that is not over yet (Airflow 3.3's trigger form pre-fills *now*) cannot mean
   that day, whose data is still arriving: the run scores the latest complete day instead, and says so.
4. A manual run with no logical date (the REST API's and ``airflow dags trigger``'s default) scores the
   latest complete day: the day before ``run_after`` in the job's timezone.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from pipeline.errors import NightscoreError
from pipeline.jobs import parse_ds


def latest_complete_day(now: datetime, tz: str) -> date:
    """The last whole day before ``now`` in timezone ``tz``."""
    return now.astimezone(ZoneInfo(tz)).date() - timedelta(days=1)


def default_day(tz: str, now: datetime | None = None) -> date:
    """The one rule for "which day" when none is given, for every entry point (``score``, ``train``,
    ``evaluate``, ``backfill``, ``demo-data``, the Airflow tasks): the latest complete day in the job's time
    zone ``tz`` at ``now`` (default: this instant). Never the machine's local time zone."""
    return latest_complete_day(now if now is not None else datetime.now(UTC), tz)


def job_today(tz: str, now: datetime | None = None) -> date:
    """The day in progress in the job's time zone: the day after :func:`default_day`."""
    return default_day(tz, now) + timedelta(days=1)


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
    latest = latest_complete_day(run_after, tz)
    if logical_date is not None:
        day = logical_date.astimezone(ZoneInfo(tz)).date()
        kind = str(run_type or "").lower()
        if day <= latest or kind.endswith(("scheduled", "backfill")):
            return day, f"ds {day} from the run's logical date {logical_date.isoformat()}"
        return latest, (
            f"ds {latest}: the latest complete day ({tz}); the run's logical date {logical_date.isoformat()} falls in a day "
            f"that is not over at {run_after.isoformat()} (the trigger form's default is now); give ds to score another day"
        )
    return latest, f"ds {latest}: the latest complete day before {run_after.isoformat()} ({tz}), as the run has no logical date"
