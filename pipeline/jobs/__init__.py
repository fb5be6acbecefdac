"""Job specs: one YAML file per scoring job, with its feature contract, loaded and validated.

The feature contract is the single source of truth: the GX suite, the model's feature list and the
scoring input order all derive from it. An invalid spec is rejected at load time with the file,
the field and the reason.

- :mod:`pipeline.jobs.spec`: the spec's model (features, source, model, decision, training, validation
  policy, drift, evaluation, alerts);
- :mod:`pipeline.jobs.load`: loading a folder of specs, once per process while a file is unchanged;
- :mod:`pipeline.jobs.binds`: the days in a job's queries (``:ds``, ``:start``, ``:end``) and on the
  command line.
"""

from __future__ import annotations

from pipeline.jobs.binds import parse_ds, render_binds
from pipeline.jobs.load import load_all, load_each, load_job, load_spec, spec_files
from pipeline.jobs.spec import (
    CRON_PRESETS,
    MAX_SHARDS,
    NAME_RE,
    Alerts,
    Decision,
    Drift,
    Evaluation,
    Feature,
    JobSpec,
    Level,
    ModelRef,
    Source,
    Training,
    ValidationPolicy,
    check_cron,
)

__all__ = [
    "CRON_PRESETS",
    "MAX_SHARDS",
    "NAME_RE",
    "Alerts",
    "Decision",
    "Drift",
    "Evaluation",
    "Feature",
    "JobSpec",
    "Level",
    "ModelRef",
    "Source",
    "Training",
    "ValidationPolicy",
    "check_cron",
    "load_all",
    "load_each",
    "load_job",
    "load_spec",
    "parse_ds",
    "render_binds",
    "spec_files",
]
