"""The job spec's every key, its type and its default, as a Markdown table, from the spec's pydantic models.

``python tools/spec_reference.py`` rewrites the table in docs/job-spec.md (between its ``keys:start`` and
``keys:end`` markers); ``make docs`` runs it before building the site, and tests/unit/test_docs.py fails when
the page's table differs from what the models say (a key added to the spec without its line in the docs).
"""

from __future__ import annotations

import re
import sys
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PAGE = ROOT / "docs" / "job-spec.md"
START, END = "<!-- keys:start (tools/spec_reference.py writes this table) -->", "<!-- keys:end -->"


def _type(annotation: Any) -> str:
    text = str(annotation).replace("typing.", "").replace("pipeline.jobs.spec.", "")
    text = re.sub(r"<class '([\w.]+)'>", lambda m: m.group(1).rsplit(".", 1)[-1], text)
    text = text.replace("NoneType", "null").replace("Literal", "one of ")
    return text


def _default(field: Any) -> str:
    from pydantic import BaseModel
    from pydantic_core import PydanticUndefined

    if field.is_required():
        return "**required**"
    value = field.default_factory() if field.default_factory is not None else field.default
    if value is PydanticUndefined:
        return ""
    if isinstance(value, BaseModel):
        return "`" + ", ".join(f"{k}: {v}" for k, v in value.model_dump().items()) + "`" if len(str(value)) < 60 else "see its keys"
    return f"`{value!r}`" if value not in (None, [], {}) else ("none" if value is None else f"`{value!r}`")


def keys() -> Iterator[tuple[str, str, str]]:
    """``(path, type, default)`` of every key of a job spec, parents before their children."""
    from pydantic import BaseModel

    from pipeline.jobs.spec import JobSpec

    def walk(model: type[BaseModel], prefix: str) -> Iterator[tuple[str, str, str]]:
        for name, field in model.model_fields.items():
            if field.exclude:  # set by the loader, not part of the YAML
                continue
            path = prefix + name
            yield path, _type(field.annotation), _default(field)
            found = [a for a in (typing.get_args(field.annotation) or (field.annotation,))]
            found += [b for a in found for b in typing.get_args(a)]
            for sub in found:
                if isinstance(sub, type) and issubclass(sub, BaseModel):
                    text = str(field.annotation)
                    child = f"{path}[]." if "list[" in text else f"{path}.<kind>." if "dict[" in text else f"{path}."
                    yield from walk(sub, child)
                    break

    yield from walk(JobSpec, "")


def table() -> str:
    rows = ["| key | type | default |", "|---|---|---|"]
    bar = "\\|"  # a | inside a table cell
    rows += [f"| `{path}` | {kind.replace('|', bar)} | {default} |" for path, kind, default in keys()]
    return "\n".join(rows)


def rewrite(page: Path = PAGE) -> bool:
    """Put the current table between the page's markers; True if the page changed."""
    text = page.read_text()
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{START}\n{table()}\n{END}{tail}"
    if new != text:
        page.write_text(new)
    return new != text


if __name__ == "__main__":
    print("docs/job-spec.md: key table " + ("rewritten" if rewrite() else "up to date"))
