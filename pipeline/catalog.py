"""What is defined, as the listing commands show it: the job specs (``nightscore jobs``) and the versions in
the model registry with their aliases (``nightscore model list``).

Listing the jobs checks each spec as it loads: a broken spec is one error in the list, not the end of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from pipeline import registry
from pipeline.config import Settings
from pipeline.errors import NightscoreError
from pipeline.jobs import JobSpec, load_spec, spec_files
from pipeline.registry import ModelVersion


@dataclass
class SpecCheck:
    """The specs that loaded, one row each, and one message per spec that did not."""

    rows: list[dict[str, Any]] = field(default_factory=list)  # job, schedule, model, kind, features, owner, spec
    errors: list[str] = field(default_factory=list)


def spec_row(spec: JobSpec) -> dict[str, Any]:
    """A job's row in the listing."""
    return {
        "job": spec.name,
        "schedule": f"{spec.schedule} {spec.timezone}",
        "model": f"{spec.model.name}@{spec.model.alias}",
        "kind": spec.model.kind,
        "features": len(spec.features),
        "key": spec.key_columns,
        "source": spec.source.model_dump(exclude_none=True),  # {"sql": ...}, {"connection": ..., "sql": ...} or {"parquet": ...}
        "owner": spec.owner,
        "spec": str(spec.spec_path),
    }


def check_specs(settings: Settings, files: Sequence[str | Path] | None = None) -> SpecCheck:
    """Load and check the spec files ``files``, or every spec in the jobs folder; raises when there is none."""
    paths = [Path(f) for f in files] if files else spec_files(settings.jobs_dir)
    if not paths:
        raise NightscoreError("no job specs found", where=str(settings.jobs_dir), fix="add a <job>.yml there or set NIGHTSCORE_JOBS_DIR")
    found = SpecCheck()
    for path in paths:
        if not path.is_file():
            found.errors.append(f"{path}: no such file")
            continue
        try:
            found.rows.append(spec_row(load_spec(path)))
        except NightscoreError as exc:
            found.errors.append(str(exc))
    return found


def model_versions(eng: Engine, name: str | None = None) -> list[tuple[ModelVersion, list[str]]]:
    """The registered versions of model ``name`` (default: every model), each with the aliases naming it;
    raises when ``name`` has no version."""
    if name is not None:
        registry.require_model(eng, name)
    al = registry.aliases(eng, name)
    return [(mv, [a for (m, a), v in al.items() if m == mv.name and v == mv.version]) for mv in registry.list_versions(eng, name)]
