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


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:  # type: ignore[override]
        seen: dict[object, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            line = key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} appears twice (lines {seen[key]} and {line})", key_node.start_mark
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _yaml_error(exc: yaml.YAMLError) -> tuple[str, str]:
    """What went wrong, with its line, and the fix, for the YAML mistakes people make in a spec."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    problem = str(getattr(exc, "problem", None) or exc).strip()
    text = f"{problem}{line}"
    if "'@'" in problem or "'`'" in problem:
        return f"{text}: a value starting with @ must be quoted", 'quote the value, e.g. schedule: "@daily"'
    if "'\t'" in problem or "\t" in problem:
        return f"{text}: a tab where YAML wants spaces", "indent with spaces, never tabs"
    if "appears twice" in problem:
        return text, "keep one of the two (the later one would silently win in other YAML readers)"
    if "mapping values are not allowed" in problem:
        return f"{text}: a ': ' inside a value", "quote the value, or put a space after each '-' of a list"
    return text, "correct the YAML syntax at that line"


def _read_spec(path: Path) -> JobSpec:
    try:
        raw = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)  # noqa: S506  (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        what, fix = _yaml_error(exc)
        raise JobSpecError(f"job spec is not valid YAML: {what}", where=str(path), fix=fix) from None
    if not isinstance(raw, dict):
        raise JobSpecError("job spec must be a mapping of fields", where=str(path), fix="see dags/jobs/churn.yml for the shape")
    try:
        spec = JobSpec.model_validate({**raw, "spec_path": path.resolve()})
    except ValidationError as exc:
        raise JobSpecError(
            f"invalid job spec: {_format_error(exc)}",
            where=str(path),
            fix="correct the field(s) named; docs/job-spec.md lists every field",
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
    """Every spec of the folder; raises on the first that does not load (see :func:`load_each`)."""
    return [load_spec(p) for p in spec_files(jobs_dir)]


def load_each(jobs_dir: Path) -> tuple[list[JobSpec], list[JobSpecError]]:
    """Every spec of the folder that loads, and the error of each that does not: one bad file costs only itself
    (the DAG factories build the others' DAGs; ``dags/check_job_specs.py`` turns the errors into an import error)."""
    specs: list[JobSpec] = []
    errors: list[JobSpecError] = []
    for path in spec_files(jobs_dir):
        try:
            specs.append(load_spec(path))
        except JobSpecError as exc:
            errors.append(exc)
        except Exception as exc:  # unreadable file, anything else: still only this spec
            errors.append(JobSpecError(f"job spec cannot be read: {exc}", where=str(path), fix="check the file"))
    return specs, errors
