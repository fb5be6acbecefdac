"""The job spec's model: one YAML file per scoring job, with its feature contract (pydantic, strict: an
unknown field, a wrong type or a value out of its range is an error naming the field).

The feature contract is the single source of truth: the GX suite, the model's feature list and the
scoring input order all derive from it.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipeline.jobs.binds import render_binds

NAME_RE = r"^[a-z][a-z0-9_]{0,62}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Feature(_Strict):
    """One column of the feature contract."""

    name: str = Field(pattern=NAME_RE)
    type: Literal["float", "int", "category", "bool"]
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    values: list[str] | None = None  # allowed categories, in model code order
    description: str = ""

    @model_validator(mode="after")
    def _check(self) -> Feature:
        if self.type == "category":
            if not self.values:
                raise ValueError(f"category feature {self.name!r} needs a non-empty 'values' list")
            if len(set(self.values)) != len(self.values):
                raise ValueError(f"category feature {self.name!r} lists a value twice")
            if self.min is not None or self.max is not None:
                raise ValueError(f"category feature {self.name!r} cannot have min/max")
        elif self.values is not None:
            raise ValueError(f"only category features take 'values' ({self.name!r} is {self.type})")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"feature {self.name!r} has min > max")
        return self


CONNECTION_RE = r"^[A-Za-z][A-Za-z0-9_]{0,62}$"


class Source(_Strict):
    """Where a day's rows come from (see docs/sources.md):

    - ``{sql: file.sql}``: a query on the predictions database (``:ds``/``:start``/``:end`` binds);
    - ``{connection: NAME, sql: file.sql}``: the query on another database: the URL in
      ``NIGHTSCORE_CONN_<NAME>`` (or the file ``NIGHTSCORE_CONN_<NAME>_FILE`` names), or inside Airflow the
      Airflow Connection ``NAME``;
    - ``{parquet: LOCATION}``: the day's Parquet dataset, ``s3://bucket/prefix/ds={ds}/`` or a folder (relative
      to the spec); ``{ds}`` is the day, ``{artifacts}`` the artifact store's root."""

    sql: str | None = None
    connection: str | None = Field(default=None, pattern=CONNECTION_RE)
    parquet: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one(self) -> Source:
        if (self.sql is None) == (self.parquet is None):
            raise ValueError("a source is either a query (sql: file.sql, with connection: NAME for another database) or parquet: LOCATION")
        if self.parquet is not None:
            if self.connection is not None:
                raise ValueError("source.connection is for queries; a parquet source reads the artifact store's S3 or a folder")
            if "{ds}" not in self.parquet:
                raise ValueError(
                    f"source.parquet {self.parquet!r} has no {{ds}}: name the day's folder, e.g. s3://bucket/features/ds={{ds}}/"
                )
            unknown = set(re.findall(r"\{([^}]*)\}", self.parquet)) - {"ds", "ds_nodash", "artifacts"}
            if unknown:
                raise ValueError(
                    f"source.parquet: unknown placeholder {{{sorted(unknown)[0]}}} (known: {{ds}}, {{ds_nodash}}, {{artifacts}})"
                )
        return self

    @property
    def kind(self) -> Literal["database", "connection", "parquet"]:
        return "parquet" if self.parquet is not None else "connection" if self.connection else "database"

    def path(self, spec_dir: Path) -> Path:
        """The query file (a SQL source)."""
        assert self.sql is not None, "a parquet source has no query file"
        return (spec_dir / self.sql).resolve()

    def describe(self, spec_dir: Path) -> str:
        """Where the rows come from, for messages (never a credential: a connection is named, not shown)."""
        if self.parquet is not None:
            return f"parquet {self.parquet}"
        where = str(self.path(spec_dir))
        return f"{where} on connection {self.connection}" if self.connection else where


Kind = Literal["binary", "multiclass", "regression"]
MAX_SHADOWS = 5  # each shadow model scores the whole day again


class ModelRef(_Strict):
    name: str = Field(pattern=NAME_RE)
    alias: str = Field(default="champion", pattern=NAME_RE)
    # what the model predicts: the probability of one outcome (binary), one of several classes (multiclass)
    # or a number (regression); see docs/model-kinds.md
    kind: Kind = "binary"
    # challengers (aliases or version numbers of the same model) scoring the same batches into
    # shadow_predictions, never into predictions (docs/storage-and-registry.md: shadow scoring)
    shadow: list[int | str] = Field(default_factory=list, max_length=MAX_SHADOWS)

    @field_validator("shadow")
    @classmethod
    def _shadow(cls, refs: list[int | str]) -> list[int | str]:
        out = [shadow_ref(r) for r in refs]
        if len(set(out)) != len(out):
            raise ValueError(f"model.shadow names a model twice: {refs}")
        return out

    @model_validator(mode="after")
    def _not_itself(self) -> ModelRef:
        if self.alias in self.shadow:
            raise ValueError(f"model.shadow names {self.alias!r}, the job's own alias: the model it scores with cannot shadow itself")
        return self


def shadow_ref(ref: int | str) -> int | str:
    """A shadow model as the spec or ``--shadow`` names it: a version number (``3``, ``"3"``, ``"v3"``) or an alias."""
    if isinstance(ref, bool):
        raise ValueError(f"shadow model {ref!r} is neither a version number nor an alias")
    if isinstance(ref, int):
        if ref < 1:
            raise ValueError(f"shadow model version {ref} is not a version (1 or more)")
        return ref
    text = str(ref).strip()
    if re.fullmatch(r"v?[0-9]+", text):
        return shadow_ref(int(text.lstrip("v")))
    if not re.fullmatch(NAME_RE, text):
        raise ValueError(f"shadow model {ref!r} is neither a version number nor an alias name")
    return text


class Band(_Strict):
    """A regression label for predicted values in ``[min, max)`` (no ``min``: from minus infinity; no ``max``: on)."""

    label: str = Field(min_length=1)
    min: float | None = None
    max: float | None = None


class Decision(_Strict):
    """How a prediction becomes the published ``label``, by the model's kind:

    - binary: ``score >= threshold`` → ``positive`` else ``negative``;
    - multiclass: the most probable of ``classes`` (listed in the model's class order: class 0 first);
    - regression: the ``bands`` the value falls in (contiguous ranges), or no label at all."""

    threshold: float = Field(default=0.5, ge=0, le=1)
    positive: str = "positive"
    negative: str = "negative"
    classes: list[str] | None = None
    bands: list[Band] | None = None

    def check(self, kind: str) -> None:
        binary_fields = {"threshold", "positive", "negative"} & self.model_fields_set
        if kind != "binary" and binary_fields:
            raise ValueError(f"decision.{sorted(binary_fields)[0]} is for binary models; this job's model.kind is {kind}")
        if kind != "multiclass" and self.classes is not None:
            raise ValueError(f"decision.classes is for multiclass models; this job's model.kind is {kind} (set model.kind: multiclass)")
        if kind != "regression" and self.bands is not None:
            raise ValueError(f"decision.bands is for regression models; this job's model.kind is {kind} (set model.kind: regression)")
        if kind == "multiclass":
            if not self.classes or len(self.classes) < 2:
                raise ValueError("a multiclass job names its classes in the model's order: decision: {classes: [first, second, ...]}")
            if len(set(self.classes)) != len(self.classes):
                raise ValueError("decision.classes lists a class twice")
        if kind == "regression" and self.bands is not None:
            check_bands(self.bands)


def check_bands(bands: list[Band]) -> None:
    """Bands must be contiguous and in ascending order: each starts where the one before it ends."""
    if not bands:
        raise ValueError("decision.bands is empty: list at least one band, or leave bands out for no label")
    labels = [b.label for b in bands]
    if len(set(labels)) != len(labels):
        raise ValueError("decision.bands uses a label twice")
    for i, b in enumerate(bands):
        where = f"decision.bands[{i}] ({b.label!r})"
        if b.min is not None and b.max is not None and b.min >= b.max:
            raise ValueError(f"{where}: min {b.min} is not below max {b.max}")
        if i > 0 and b.min is None:
            raise ValueError(f"{where}: only the first band may leave out min (set min: {bands[i - 1].max})")
        if i < len(bands) - 1 and b.max is None:
            raise ValueError(f"{where}: only the last band may leave out max")
        if i > 0:
            prev = bands[i - 1].max
            if b.min is not None and prev is not None and b.min > prev:
                raise ValueError(f"{where}: a gap between {prev} and {b.min}: set min: {prev}")
            if b.min is not None and prev is not None and b.min < prev:
                raise ValueError(f"{where}: overlaps the band before it ({b.min} < {prev}): set min: {prev}")


CRON_PRESETS = {"@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly"}


def check_cron(v: str) -> str:
    """A schedule is a cron preset or five cron fields (Airflow's cron timetables read it)."""
    if v.strip() in CRON_PRESETS or len(v.split()) == 5:
        return v.strip()
    raise ValueError(f"schedule {v!r} is neither a cron preset ({', '.join(sorted(CRON_PRESETS))}) nor five cron fields like '0 2 * * *'")


class Training(_Strict):
    sql: str  # query over a labelled window, binds :start and :end (dates, end exclusive)
    label: str = Field(pattern=NAME_RE)
    train_days: int = Field(default=21, ge=1)
    holdout_days: int = Field(default=7, ge=1)
    promote_margin: float = Field(default=0.0, ge=0)  # the primary metric's gain a new model needs to replace the champion
    # any XGBoost objective that fits model.kind (default: binary:logistic, multi:softprob, reg:squarederror)
    objective: str | None = Field(default=None, pattern=r"^[a-z]+:[a-z]+$")
    # the champion gate's metric (default by kind: auc, logloss, rmse; pinball for quantile models)
    metric: str | None = None
    params: dict[str, float | int | str | list[float]] = Field(default_factory=dict)
    num_boost_round: int = Field(default=200, ge=1)
    schedule: str = "@weekly"  # when the train_<job> DAG retrains (cron or preset)

    @field_validator("schedule")
    @classmethod
    def _cron(cls, v: str) -> str:
        return check_cron(v)


MAX_SHARDS = 256


class ValidationPolicy(_Strict):
    policy: Literal["fail", "quarantine"] = "fail"
    max_bad_ratio: float = Field(default=0.0, ge=0, le=1)
    min_rows: int = Field(default=1, ge=1)


class Level(_Strict):
    """A drift metric's thresholds: above ``warn`` it is flagged, above ``alert`` it alerts (and may retrain)."""

    warn: float = Field(ge=0)
    alert: float = Field(ge=0)

    @model_validator(mode="after")
    def _order(self) -> Level:
        if self.alert < self.warn:
            raise ValueError("alert must be at least warn")
        return self


class Drift(_Strict):
    """Drift thresholds per metric (see docs/drift.md); ``psi_warn`` is the older name of ``psi.warn`` for the score."""

    psi_warn: float = Field(default=0.1, ge=0)
    psi: Level = Level(warn=0.1, alert=0.25)  # population stability index over the reference's deciles
    ks: Level = Level(warn=0.1, alert=0.2)  # Kolmogorov-Smirnov statistic (numeric features, the score)
    # Jensen-Shannon distance, base 2 (categories): a category's share doubled from 20% gives about 0.16 (and a
    # PSI of only 0.14); two samples of 3,000 rows of the same distribution, about 0.02
    js: Level = Level(warn=0.05, alert=0.1)
    null_rate: Level = Level(warn=0.05, alert=0.1)  # the null share's rise over training
    out_of_range: Level = Level(warn=0.01, alert=0.05)  # share outside the training range / the allowed values

    @model_validator(mode="before")
    @classmethod
    def _retired(cls, data: object) -> object:
        if isinstance(data, dict) and "psi_fail" in data:
            raise ValueError(
                "drift.psi_fail is no longer read (it never failed a day): remove it; a drift metric's levels are "
                "drift.psi: {warn, alert}, and alerts.rules.drift says who hears about them and how often"
            )
        return data


class Estimate(_Strict):
    """Performance estimated before labels (binary models, docs/delayed-labels.md): the expected AUC, precision
    and recall of each published day from its scores alone, trusted only as far as the model is calibrated."""

    # the model's holdout calibration error (mean |score - outcome rate| over score deciles) above this: the
    # estimates are marked unreliable and the job report warns
    calibration_warn: float = Field(default=0.05, ge=0, le=1)
    # the holdout's AUC estimated from its own scores minus its realized AUC, beyond this either way: unreliable
    # (scores sharper than the outcomes, as an over-fit model's, pass the decile calibration and fail this)
    auc_gap_warn: float = Field(default=0.02, ge=0, le=1)
    use_calibration_map: bool = False  # the scores go through the holdout's monotone calibration map first


class Evaluation(_Strict):
    """Performance once the outcomes arrive: ``nightscore evaluate`` joins a published day's predictions with
    what the outcome query returns for that day, and compares AUC, log loss and calibration with the model's
    holdout metrics (see docs/delayed-labels.md). Which comparisons apply depends on the model's kind:
    binary AUC drop, log-loss rise and calibration error; multiclass log-loss rise and accuracy drop;
    regression RMSE rise (relative to the holdout's) and, for quantile models, the interval's coverage drop."""

    sql: str  # the outcomes of the scored day :ds: the entity key and the label column
    label: str | None = Field(default=None, pattern=NAME_RE)  # the outcome column (default: training.label)
    mature_days: int = Field(default=30, ge=0)  # a day's outcomes are complete this many days after it
    lookback_days: int = Field(default=90, ge=1)  # the scheduled evaluation looks this far back for matured days
    schedule: str = "@daily"  # when the evaluate_<job> DAG evaluates the days that matured
    min_labelled: int = Field(default=100, ge=1)  # fewer labelled rows: recorded, level 'insufficient'
    # the holdout AUC minus the day's: a day of 20,000 rows and 10% positives wobbles by about 0.02 on its own
    auc_drop: Level = Level(warn=0.03, alert=0.06)
    logloss_rise: Level = Level(warn=0.05, alert=0.1)  # the day's log loss minus the holdout's
    calibration_error: Level = Level(warn=0.03, alert=0.06)  # mean |score - outcome rate| over score deciles, weighted by rows
    accuracy_drop: Level = Level(warn=0.03, alert=0.06)  # multiclass: the holdout accuracy minus the day's
    rmse_rise: Level = Level(warn=0.1, alert=0.25)  # regression: the day's RMSE over the holdout's, minus 1 (0.1: 10% worse)
    coverage_drop: Level = Level(warn=0.05, alert=0.1)  # quantile models: the holdout interval coverage minus the day's
    estimate: Estimate = Estimate()  # binary: each published day's performance estimated from its scores

    @field_validator("schedule")
    @classmethod
    def _cron(cls, v: str) -> str:
        return check_cron(v)


AlertKind = Literal["failed", "late", "quarantine", "drift", "performance", "training", "performance_estimated"]
AlertLevel = Literal["info", "warn", "alert"]
_DURATION_RE = r"^(0|\d+[smhd])$"


class AlertRule(_Strict):
    """How one kind of alert reaches people: from which level, how often, and (drift) after how many days."""

    min_level: AlertLevel = "alert"  # a lower level is recorded, not sent
    cooldown: str = Field(default="0", pattern=_DURATION_RE)  # "7d", "12h", "30m": no repeat of this kind of alert within it
    consecutive_days: int = Field(default=1, ge=1)  # drift: only once it has held this many published days in a row

    def cooldown_delta(self) -> timedelta:
        if self.cooldown == "0":
            return timedelta(0)
        n, unit = int(self.cooldown[:-1]), self.cooldown[-1]
        return timedelta(**{{"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[unit]: n})


class Alerts(_Strict):
    """Who hears about the job's days: a webhook (Slack-compatible JSON) and/or email addresses.

    The webhook's URL is a secret (a Slack URL carries its token), so a spec names the environment variable
    that holds it (``webhook_env``); ``webhook`` takes a URL directly for a hook without a secret in it."""

    webhook: str | None = Field(default=None, pattern=r"^https?://")
    webhook_env: str | None = Field(default=None, pattern=r"^[A-Z_][A-Z0-9_]*$")
    email: list[str] = Field(default_factory=list)
    on_failure: bool = True  # a day that fails (any task of its Airflow run, after its retries)
    quarantine_share: float | None = Field(default=None, ge=0, le=1)  # a published day with more of its rows quarantined
    # "HH:MM": a scheduled day not published by this time of the next day (the job's timezone) sends one message
    deadline: str | None = Field(default=None, pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    # per kind of alert (failed, late, quarantine, drift, performance, performance_estimated, training): min_level, cooldown,
    # consecutive_days; a kind not listed: level alert and above, every time (the same day's alert only once)
    rules: dict[AlertKind, AlertRule] = Field(default_factory=dict)

    @field_validator("rules")
    @classmethod
    def _rules(cls, v: dict[str, AlertRule]) -> dict[str, AlertRule]:
        for kind, rule in v.items():
            if rule.consecutive_days > 1 and kind != "drift":
                raise ValueError(f"alerts.rules.{kind}.consecutive_days: only drift alerts wait for days in a row")
        return v

    def rule(self, kind: str) -> AlertRule:
        return self.rules.get(kind, AlertRule())  # type: ignore[call-overload]

    def deadline_after_day(self) -> timedelta | None:
        """The deadline as time after the day's start (its logical date): one day plus HH:MM."""
        if not self.deadline:
            return None
        hours, minutes = (int(x) for x in self.deadline.split(":"))
        return timedelta(days=1, hours=hours, minutes=minutes)

    @field_validator("email")
    @classmethod
    def _emails(cls, v: list[str]) -> list[str]:
        bad = [a for a in v if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", a)]
        if bad:
            raise ValueError(f"not an email address: {', '.join(bad)}")
        return v

    @property
    def configured(self) -> bool:
        return bool(self.webhook or self.webhook_env or self.email)


class Explain(_Strict):
    """Each published row's top reasons: the features that moved its score most, by XGBoost's own contributions
    (margin units: log-odds for classifiers), in ``prediction_reasons`` (docs/explanations.md)."""

    top: int = Field(default=3, ge=1, le=20)  # reasons per row, largest |contribution| first
    # approx: XGBoost's approx_contribs (Saabas: about 3x a predict); exact: tree SHAP (pred_contribs, 100x and more)
    method: Literal["approx", "exact"] = "approx"
    max_rows: int | Literal["all"] = "all"  # explain only the day's N highest-scoring rows

    @field_validator("max_rows")
    @classmethod
    def _max_rows(cls, v: int | str) -> int | str:
        if v != "all" and int(v) < 1:
            raise ValueError("explain.max_rows is a number of rows (1 or more), or all")
        return v


class JobSpec(_Strict):
    name: str = Field(pattern=NAME_RE)
    description: str = ""
    owner: str = "data-engineering"
    schedule: str = "@daily"
    timezone: str = "UTC"
    max_active_runs: int = Field(default=4, ge=1)
    # a day is split by a stable hash of the entity key into this many shards, each extracted, validated,
    # scored and loaded on its own (a worker process, or a mapped Airflow task); "auto": one per core
    shards: int | Literal["auto"] = 1
    # the column that names an entity, or the columns that do together (store_id and sku)
    entity_key: str | list[str]
    source: Source
    features: list[Feature] = Field(min_length=1)
    model: ModelRef
    decision: Decision = Decision()
    training: Training
    validation: ValidationPolicy = ValidationPolicy()
    drift: Drift = Drift()
    evaluation: Evaluation | None = None
    alerts: Alerts = Alerts()
    explain: Explain | None = None  # each row's top reasons, published with the day
    tags: list[str] = Field(default_factory=list)

    # set by the loader, not part of the YAML
    spec_path: Path = Field(default=Path("."), exclude=True)

    @field_validator("schedule")
    @classmethod
    def _cron(cls, v: str) -> str:
        return check_cron(v)

    @field_validator("entity_key")
    @classmethod
    def _key(cls, v: str | list[str]) -> str | list[str]:
        names = [v] if isinstance(v, str) else v
        if not names:
            raise ValueError("entity_key lists no column")
        bad = [n for n in names if not re.fullmatch(NAME_RE, n)]
        if bad:
            raise ValueError(f"entity_key column {bad[0]!r} is not a lowercase identifier (letters, digits, _)")
        if len(set(names)) != len(names):
            raise ValueError("entity_key lists a column twice")
        return v if isinstance(v, str) or len(v) > 1 else v[0]

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if v == "latest":  # predictions_latest is the view of every job's latest day
            raise ValueError("a job cannot be named 'latest' (its view predictions_latest is taken)")
        return v

    @field_validator("shards")
    @classmethod
    def _shards(cls, v: int | str) -> int | str:
        if v != "auto" and not 1 <= int(v) <= MAX_SHARDS:
            raise ValueError(f"shards must be between 1 and {MAX_SHARDS}, or auto")
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        from zoneinfo import ZoneInfo

        try:
            ZoneInfo(v)
        except Exception:
            raise ValueError(f"unknown timezone {v!r}") from None
        return v

    @model_validator(mode="after")
    def _check(self) -> JobSpec:
        names = [f.name for f in self.features]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"features listed twice: {', '.join(dupes)}")
        keys = self.key_columns
        clash = [k for k in keys if k in names]
        if clash:
            raise ValueError(f"entity_key {clash[0]!r} cannot also be a feature")
        if self.training.label in names or self.training.label in keys:
            raise ValueError(f"training.label {self.training.label!r} clashes with a feature or the entity key")
        self.decision.check(self.model.kind)
        from pipeline.objectives import check_training

        check_training(self.model.kind, self.training, self.decision)
        return self

    @property
    def kind(self) -> str:
        return self.model.kind

    # ---- derived ------------------------------------------------------------------------
    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def key_columns(self) -> list[str]:
        """The entity key's columns (one, or several that name an entity together)."""
        return [self.entity_key] if isinstance(self.entity_key, str) else list(self.entity_key)

    @property
    def columns(self) -> list[str]:
        """The columns a scoring partition must have, in order."""
        return [*self.key_columns, *self.feature_names]

    @property
    def spec_dir(self) -> Path:
        return self.spec_path.parent

    def source_sql(self, ds: date) -> str:
        return render_binds(self.source.path(self.spec_dir).read_text(), ds=ds)

    def source_where(self) -> str:
        return self.source.describe(self.spec_dir)

    @property
    def mature_days(self) -> int:
        """Days after a day until its outcomes are complete (``evaluation.mature_days``; 0 without evaluation)."""
        return self.evaluation.mature_days if self.evaluation else 0

    @property
    def outcome_label(self) -> str:
        return (self.evaluation.label if self.evaluation else None) or self.training.label

    def outcomes_sql(self, ds: date) -> str:
        assert self.evaluation is not None
        return render_binds((self.spec_dir / self.evaluation.sql).read_text(), ds=ds)

    def training_sql(self, start: date, end: date) -> str:
        return render_binds((self.spec_dir / self.training.sql).read_text(), start=start, end=end)
