"""Backfill: score every day of a range, one run per day, after checking up front what would fail every day.

:func:`plan` checks, before any day runs, that the range is in order and ends at a complete day in the job's
time zone (:func:`pipeline.schedule.default_day`), the job spec, the database (migrated, dead runs reaped) and
the model (the alias's current version, or the pinned one). :func:`run` then scores the days oldest first and
yields each day's result as it ends: a day that fails does not stop the others. :func:`raise_if_failed` ends a
backfill that had failed days with one error naming them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from pipeline import registry
from pipeline.config import Settings
from pipeline.errors import NightscoreError, UsageError
from pipeline.jobs import JobSpec, load_job
from pipeline.ledger import ready_engine
from pipeline.registry import ModelVersion
from pipeline.run import RunState, score_partition
from pipeline.schedule import default_day


@dataclass(frozen=True)
class Plan:
    """The checked backfill: its days, the model it starts with and how each day runs."""

    spec: JobSpec
    days: list[date]
    model: ModelVersion  # the pinned version, or the alias's version when the backfill starts
    model_version: int | None = None  # pinned; None: the alias, resolved at each day's start
    dry_run: bool = False
    shard_count: int | None = None  # None: the job spec's
    workers: int | None = None
    shadow: list[int | str] | None = None  # None: the job spec's model.shadow

    @property
    def job(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class DayResult:
    """One day of a backfill: the run that scored it, or the error that stopped it."""

    ds: date
    state: RunState | None = None
    error: NightscoreError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def plan(
    settings: Settings,
    job: str,
    first: date,
    last: date,
    *,
    model_version: int | None = None,
    dry_run: bool = False,
    shard_count: int | None = None,
    workers: int | None = None,
    shadow: list[int | str] | None = None,
) -> Plan:
    """Check the backfill of ``job`` over ``first``..``last`` (inclusive) before any day runs."""
    if first > last:
        raise UsageError(f"--start {first} is after --end {last}", where="--start", fix="swap them")
    spec = load_job(settings.jobs_dir, job)
    complete = default_day(spec.timezone)
    if last > complete:
        raise UsageError(
            f"--end {last} is not a complete day yet in {spec.timezone} (the latest is {complete})",
            where="--end",
            fix=f"end the backfill at {complete} or earlier",
        )
    mv = registry.resolve(ready_engine(settings), spec.model.name, spec.model.alias, model_version)
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    return Plan(spec, days, mv, model_version, dry_run, shard_count, workers, shadow)


def run(settings: Settings, plan: Plan) -> Iterator[DayResult]:
    """Score the plan's days oldest first, one run each, yielding each day's result as it ends; a day that
    fails with a :class:`NightscoreError` is yielded as failed and the next day runs."""
    for d in plan.days:
        try:
            state = score_partition(
                settings,
                plan.job,
                d,
                model_version=plan.model_version,
                dry_run=plan.dry_run,
                shard_count=plan.shard_count,
                workers=plan.workers,
                shadow=plan.shadow,
            )
        except NightscoreError as exc:
            yield DayResult(d, error=exc)
            continue
        yield DayResult(d, state=state)


def failed_days(results: Sequence[DayResult]) -> list[date]:
    """The days that failed, in order."""
    return [r.ds for r in results if not r.ok]


def raise_if_failed(plan: Plan, results: Sequence[DayResult]) -> None:
    """One error naming the failed days (each day's own error was reported as it ended), if any failed."""
    failed = [str(d) for d in failed_days(results)]
    if failed:
        raise NightscoreError(
            f"{len(failed)} of {len(plan.days)} day(s) failed ({', '.join(failed)})",
            fix="each day's error is printed above it (and in `nightscore runs`); rerun those days once fixed, "
            f"with `nightscore score --job {plan.job} --ds <day>` or a backfill over them",
        )
