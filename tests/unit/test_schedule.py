"""The day a run scores, for every way a run starts (pipeline.schedule.resolve_ds, the rule the DAG applies).

Each case gives what Airflow 3.3 hands the task for that kind of start: its run type, logical date and
run_after. The DAG tests run the same paths through real Airflow (dag.test, the REST API, a backfill)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from pipeline.errors import NightscoreError
from pipeline.schedule import resolve_ds

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 24, 20, 41, 7, tzinfo=UTC)  # a person at the UI, Tuesday evening


@pytest.mark.parametrize(
    ("case", "run_type", "logical_date", "run_after", "param_ds", "tz", "expected"),
    [
        # scheduled: the run for D starts once D is over and scores D
        ("scheduled", "scheduled", datetime(2026, 11, 23, tzinfo=UTC), datetime(2026, 11, 24, tzinfo=UTC), None, "UTC", date(2026, 11, 23)),
        ("scheduled, Berlin", "scheduled", datetime(2026, 11, 22, 23, tzinfo=UTC), datetime(2026, 11, 23, 23, tzinfo=UTC), None, "Europe/Berlin", date(2026, 11, 23)),
        # backfill over [A, B]: each run scores its own day (Airflow names it by run_after, a day later)
        ("backfill", "backfill", datetime(2026, 11, 10, tzinfo=UTC), datetime(2026, 11, 11, tzinfo=UTC), None, "UTC", date(2026, 11, 10)),
        # the trigger form's default logical date is now: today is not over, so yesterday
        ("UI trigger, form default", "manual", NOW, NOW, None, "UTC", date(2026, 11, 23)),
        ("UI trigger, form default, Los Angeles", "manual", NOW, NOW, None, "America/Los_Angeles", date(2026, 11, 23)),
        ("UI trigger, form default, Tokyo", "manual", NOW, NOW, None, "Asia/Tokyo", date(2026, 11, 24)),
        # the form with ds (whatever the logical date)
        ("UI trigger with ds", "manual", NOW, NOW, "2026-11-02", "UTC", date(2026, 11, 2)),
        # the form with a past date picked as logical date
        ("UI trigger, past logical date", "manual", datetime(2026, 11, 20, 9, 30, tzinfo=UTC), NOW, None, "UTC", date(2026, 11, 20)),
        # REST POST dagRuns {"logical_date": null} and `airflow dags trigger` (no logical date)
        ("REST / CLI trigger, no logical date", "manual", None, NOW, None, "UTC", date(2026, 11, 23)),
        ("REST trigger with conf ds", "manual", None, NOW, "2026-11-01", "UTC", date(2026, 11, 1)),
        ("REST trigger, logical date of a past day", "manual", datetime(2026, 11, 19, tzinfo=UTC), NOW, None, "UTC", date(2026, 11, 19)),
        # `airflow dags test score_churn 2026-03-15` and `airflow dags test score_churn` (logical date now)
        ("dags test with a date", "manual", datetime(2026, 3, 15, tzinfo=UTC), NOW, None, "UTC", date(2026, 3, 15)),
        ("dags test without a date", "manual", NOW, NOW, None, "UTC", date(2026, 11, 23)),
        # a logical date in the future is no day to score either
        ("manual, future logical date", "manual", datetime(2026, 12, 1, tzinfo=UTC), NOW, None, "UTC", date(2026, 11, 23)),
    ],
)
def test_the_day_each_way_of_starting_a_run_scores(case, run_type, logical_date, run_after, param_ds, tz, expected):
    day, why = resolve_ds(tz=tz, param_ds=param_ds, run_type=run_type, logical_date=logical_date, run_after=run_after)
    assert day == expected, (case, why)
    assert str(expected) in why


def test_a_ds_in_a_backfill_is_refused():
    with pytest.raises(NightscoreError, match="leave ds empty in a backfill"):
        resolve_ds(tz="UTC", param_ds="2026-11-02", run_type="backfill", logical_date=datetime(2026, 11, 10, tzinfo=UTC), run_after=NOW)


def test_the_form_default_says_why_it_scored_yesterday():
    _, why = resolve_ds(tz="UTC", param_ds=None, run_type="manual", logical_date=NOW, run_after=NOW)
    assert "not over" in why and "give ds" in why


# the one day rule every entry point (CLI score/train/evaluate/backfill, the Airflow tasks) takes its default
# from: the latest complete day in the job's time zone, at both edges of a day, in three time zones
@pytest.mark.parametrize(
    ("tz", "last_second", "first_second", "day_before", "day_after"),
    [
        # Los Angeles is UTC-8 in November: its 24th starts at 08:00 UTC
        ("America/Los_Angeles", datetime(2026, 11, 24, 7, 59, 59, tzinfo=UTC), datetime(2026, 11, 24, 8, tzinfo=UTC), date(2026, 11, 22), date(2026, 11, 23)),
        # Berlin is UTC+1: its 24th starts at 23:00 UTC on the 23rd
        ("Europe/Berlin", datetime(2026, 11, 23, 22, 59, 59, tzinfo=UTC), datetime(2026, 11, 23, 23, tzinfo=UTC), date(2026, 11, 22), date(2026, 11, 23)),
        # Tokyo is UTC+9: its 24th starts at 15:00 UTC on the 23rd
        ("Asia/Tokyo", datetime(2026, 11, 23, 14, 59, 59, tzinfo=UTC), datetime(2026, 11, 23, 15, tzinfo=UTC), date(2026, 11, 22), date(2026, 11, 23)),
    ],
)
def test_default_day_turns_at_midnight_in_the_jobs_time_zone(tz, last_second, first_second, day_before, day_after):
    from pipeline.schedule import default_day, job_today

    assert default_day(tz, last_second) == day_before
    assert default_day(tz, first_second) == day_after
    assert job_today(tz, first_second) == date.fromordinal(day_after.toordinal() + 1)
    for now in (last_second, first_second):  # a manual Airflow run with no date picks the same day as the CLI
        assert resolve_ds(tz=tz, param_ds=None, run_type="manual", logical_date=None, run_after=now)[0] == default_day(tz, now)


def test_no_entry_point_reads_the_machines_local_date():
    """``date.today()`` is the machine's local time zone: no module of the library may take a day from it."""
    from pathlib import Path

    import pipeline

    offenders = [
        str(p.relative_to(Path(pipeline.__path__[0])))
        for p in Path(pipeline.__path__[0]).rglob("*.py")
        if "date.today()" in p.read_text() or "datetime.now()" in p.read_text()
    ]
    assert offenders == []
