"""Getting started: ``init`` (the database migrated, the artifact store created), the days of the demo data,
and ``quickstart`` (everything on the embedded defaults, then one scored day).

Days follow the one rule of :func:`pipeline.schedule.default_day`: the latest complete day in the job's time
zone, never the machine's. The demo data has no job of its own: it is the source of the demo ``churn`` job,
so its days are read in that job's time zone (the job-spec default, UTC, when the jobs folder has no churn
spec). :class:`Quickstart` holds the quickstart's steps, one method each, for the CLI to show one at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from pipeline import db, registry
from pipeline.config import Settings
from pipeline.errors import NightscoreError
from pipeline.hints import psql_line
from pipeline.jobs import JobSpec, load_job, spec_files
from pipeline.schedule import default_day

if TYPE_CHECKING:
    from pipeline.run import RunState
    from pipeline.train import TrainResult

DEMO_JOB = "churn"  # the job whose source the demo data is
DEMO_DAYS = 28  # the demo data's days when no first day is given


@dataclass(frozen=True)
class Initialized:
    """What ``init`` did: the database (its URL without the password) and the artifact store."""

    database: str
    applied: list[str]  # the migrations applied now; empty: the database was up to date
    artifacts: str


def initialize(settings: Settings) -> Initialized:
    """Apply the SQL migrations and create the artifact store (an S3 bucket, or a folder)."""
    from pipeline.storage import open_store

    applied = db.migrate(db.engine(settings))
    store = open_store(settings)
    if hasattr(store, "ensure_bucket"):
        store.ensure_bucket()
    return Initialized(db.safe_url(db.database_url(settings)), applied, store.root_uri)


def demo_timezone(settings: Settings) -> str:
    """The time zone of the job the demo data feeds (``churn``), or the job-spec default without that spec."""
    if any(p.stem == DEMO_JOB for p in spec_files(settings.jobs_dir)):
        return load_job(settings.jobs_dir, DEMO_JOB).timezone
    return str(JobSpec.model_fields["timezone"].default)


def demo_days(settings: Settings, first: date | None, last: date | None) -> tuple[date, date]:
    """The demo data's first and last day: ``last`` defaults to the latest complete day in the churn job's time
    zone, ``first`` to 28 days ending at ``last``."""
    last = last if last is not None else default_day(demo_timezone(settings))
    first = first if first is not None else last - timedelta(days=DEMO_DAYS - 1)
    if first > last:
        raise NightscoreError(f"--start {first} is after --end {last}", fix="swap them")
    return first, last


class Quickstart:
    """The quickstart of one job on the embedded defaults, step by step: start the database
    (:meth:`start_database`), load the demo data (:meth:`load_demo_data`), train a model unless the job's alias
    names one (:meth:`has_model`, :meth:`train`), score the day (:meth:`score`). The day is the latest complete
    day in the job's time zone; the model is trained on the days before it."""

    def __init__(self, settings: Settings, job: str, customers: int) -> None:
        self.settings = settings
        self.spec = load_job(settings.jobs_dir, job)
        self.customers = customers
        self.day = default_day(self.spec.timezone)
        self.url = ""
        self._engine: Any = None
        self._store: Any = None

    def start_database(self) -> str:
        """Start the database (the embedded server unless a URL is set), apply the migrations, open the
        artifact store; return the database URL without its password."""
        from pipeline.storage import open_store

        self.url = db.database_url(self.settings)
        self._engine = db.ready_engine(self.settings)
        self._store = open_store(self.settings)
        return db.safe_url(self.url)

    def load_demo_data(self) -> dict[str, int]:
        """The demo source data for the training window and the day (days already there are kept)."""
        from pipeline.demo import load_demo_data

        t = self.spec.training
        return load_demo_data(self.settings, self.day - timedelta(days=t.train_days + t.holdout_days), self.day, self.customers)

    def has_model(self) -> bool:
        """Whether the job's alias (``champion``) already names a model version."""
        m = self.spec.model
        return (m.name, m.alias) in registry.aliases(self._engine, m.name)

    def train(self) -> TrainResult:
        """Train and register a model whose held-out days end the day before the scored day."""
        from pipeline.train import train_model

        return train_model(self.settings, self.spec, end=self.day - timedelta(days=1))

    def score(self) -> RunState:
        """Score and publish the day; the run's state."""
        from pipeline.run import score_partition

        return score_partition(self.settings, self.spec.name, self.day)

    def artifacts(self, state: RunState) -> str:
        """The URI of the run's artifacts."""
        return str(self._store.uri(state.prefix))

    def report_link(self, state: RunState) -> str | None:
        """A link to the run's HTML report (a presigned URL on S3), or None when it has none."""
        return str(self._store.link(self._store.key(state.report_uri))) if state.report_uri else None

    def psql_command(self) -> str:
        """The psql command line for the database, without the password."""
        from sqlalchemy.engine import make_url

        return f"psql '{db.libpq_uri(make_url(self.url)._replace(password=None).render_as_string(hide_password=False))}'"

    @property
    def password_in_url(self) -> bool:
        """Whether the database URL holds a password (psql asks for it, or reads PGPASSWORD)."""
        from sqlalchemy.engine import make_url

        return bool(make_url(self.url).password)

    def first_query(self) -> str:
        """A first query of the day's predictions, for psql."""
        return psql_line("published_label_counts", job=self.spec.name, ds=self.day)
