"""Loading job specs from a folder: each file validated (every problem names the file and the field), the
SQL files it names checked to exist, and each spec loaded once per process while its file is unchanged."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from pipeline.errors import JobSpecError
from pipeline.jobs.spec import JobSpec


def _format_error(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        parts.append(f"field '{loc}': {msg}")
    return "; ".join(parts)


_LOADED: dict[Path, tuple[tuple[int, int], JobSpec]] = {}


def load_spec(path: Path) -> JobSpec:
    """Load and validate one spec file; every problem names the file and the field.

    A process loads a spec once: later calls return the same (frozen) spec while the file is unchanged (its
    modification time and size), so the stages of a run share it; an edited file is read again."""
    st = path.stat()
    stamp, key = (st.st_mtime_ns, st.st_size), path.resolve()
    cached = _LOADED.get(key)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    spec = _read_spec(path)
    _LOADED[key] = (stamp, spec)
    return spec


def _read_spec(path: Path) -> JobSpec:
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise JobSpecError(f"job spec is not valid YAML: {exc}", where=str(path), fix="correct the YAML syntax") from None
    if not isinstance(raw, dict):
        raise JobSpecError("job spec must be a mapping of fields", where=str(path), fix="see dags/jobs/churn.yml for the shape")
    try:
        spec = JobSpec.model_validate({**raw, "spec_path": path.resolve()})
    except ValidationError as exc:
        raise JobSpecError(
            f"invalid job spec: {_format_error(exc)}",
            where=str(path),
            fix="correct the field(s) named; the README's 'Job spec' section lists them",
        ) from None
    if spec.name != path.stem:
        raise JobSpecError(
            f"job name {spec.name!r} differs from the file name {path.stem!r}",
            where=str(path),
            fix=f"rename the file to {spec.name}.yml or set name: {path.stem}",
        )
    files = [("training.sql", spec.training.sql)]
    if spec.source.sql is not None:
        files.insert(0, ("source.sql", spec.source.sql))
    if spec.evaluation:
        files.append(("evaluation.sql", spec.evaluation.sql))
    for label, rel in files:
        if not (spec.spec_dir / rel).is_file():
            raise JobSpecError(
                f"{label} file {rel!r} does not exist", where=str(path), fix=f"create {spec.spec_dir / rel} or correct the path"
            )
    return spec


def spec_files(jobs_dir: Path) -> list[Path]:
    return sorted(jobs_dir.glob("*.yml")) + sorted(jobs_dir.glob("*.yaml"))


def load_job(jobs_dir: Path, name: str) -> JobSpec:
    """The spec of job ``name`` from ``jobs_dir``."""
    for path in spec_files(jobs_dir):
        if path.stem == name:
            return load_spec(path)
    known = ", ".join(p.stem for p in spec_files(jobs_dir)) or "none"
    raise JobSpecError(
        f"unknown job {name!r} (known jobs: {known})", where=str(jobs_dir), fix=f"add {jobs_dir / (name + '.yml')} or pick a known job"
    )


def load_all(jobs_dir: Path) -> list[JobSpec]:
    return [load_spec(p) for p in spec_files(jobs_dir)]
