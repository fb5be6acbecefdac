"""The library stands without Airflow: every module of ``pipeline`` imports in a fresh interpreter and
leaves ``airflow`` out of ``sys.modules``; the Airflow glue lives in ``nightscore_airflow``, which imports
beside it."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import nightscore_airflow
import pipeline


def _modules(package) -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(package.__path__, prefix=package.__name__ + "."))


def _import_all(names: list[str]) -> subprocess.CompletedProcess:
    code = (
        "import importlib, sys\n"
        f"names = {names!r}\n"
        "for n in names: importlib.import_module(n)\n"
        "print('\\n'.join(sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.'))))\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


@pytest.mark.unit
def test_every_pipeline_module_imports_without_airflow():
    names = _modules(pipeline)
    assert {"pipeline.run.shard", "pipeline.validate", "pipeline.cli", "pipeline.score", "pipeline.s3store", "pipeline.logsetup"} <= set(names)
    proc = _import_all(names)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"importing pipeline pulled in Airflow: {proc.stdout.split()[:5]}"


@pytest.mark.unit
def test_no_pipeline_module_names_airflow():
    """Not even lazily: the library's code never imports Airflow (the DAGs' glue does, in nightscore_airflow)."""
    root = pipeline.__path__[0]
    offenders = []
    for info in pkgutil.walk_packages(pipeline.__path__, prefix="pipeline."):
        path = info.module_finder.path + "/" + info.name.rsplit(".", 1)[-1]  # type: ignore[attr-defined]
        for candidate in (path + ".py", path + "/__init__.py"):
            try:
                text = open(candidate).read()
            except OSError:
                continue
            if "import airflow" in text or "from airflow" in text:
                offenders.append(candidate.removeprefix(root))
    assert offenders == []


@pytest.mark.airflow
def test_the_airflow_glue_imports():
    names = _modules(nightscore_airflow)
    assert {"nightscore_airflow.tasks", "nightscore_airflow.notifiers", "nightscore_airflow.links", "nightscore_airflow.assets"} <= set(names)
    proc = _import_all(names)
    assert proc.returncode == 0, proc.stderr
