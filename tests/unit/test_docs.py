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
