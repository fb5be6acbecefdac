"""The documentation: the README stays short (the quick start, the smallest spec, pointers), and the MkDocs
site in docs/ builds with --strict (a broken link, or a page left out of the nav, fails)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pipeline.config import PROJECT_ROOT

pytestmark = pytest.mark.unit


def test_the_readme_fits_in_300_lines_and_links_only_to_pages_that_exist():
    import re

    text = (PROJECT_ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 300
    for target in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (PROJECT_ROOT / target).is_file(), target


def test_the_docs_site_builds_strict(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (tmp_path / "site" / "sources" / "index.html").is_file()


def test_every_key_of_the_spec_is_in_the_reference_with_its_type_and_default():
    import importlib.util
    import re

    spec = importlib.util.spec_from_file_location("spec_reference", PROJECT_ROOT / "tools" / "spec_reference.py")
    assert spec and spec.loader
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)
    page = (PROJECT_ROOT / "docs" / "job-spec.md").read_text()
    assert ref.table() in page, "docs/job-spec.md's key table is stale: run `make docs` (tools/spec_reference.py)"
    paths = [path for path, _, _ in ref.keys()]
    assert len(paths) > 90 and {"entity_key", "source.parquet", "alerts.rules.<kind>.cooldown", "features[].values"} <= set(paths)
    # every key the demo specs use is among them
    import yaml

    def used(node, prefix=""):
        if isinstance(node, dict):
            for k, v in node.items():
                key = f"{prefix}{k}"
                yield key
                yield from used(v, key + ".")
        elif isinstance(node, list):
            for item in node:
                if isinstance(item, dict):
                    yield from used(item, prefix[:-1] + "[].")

    free = {path for path, kind, _ in ref.keys() if kind.startswith("dict[str")}  # training.params: XGBoost's own keys
    for demo in (PROJECT_ROOT / "dags" / "jobs").glob("*.yml"):
        for key in used(yaml.safe_load(demo.read_text())):
            generic = re.sub(r"^alerts\.rules\.\w+", "alerts.rules.<kind>", key)
            assert generic in paths or any(key.startswith(f + ".") for f in free), (demo.name, key)
