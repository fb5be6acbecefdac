"""Turn the stack's secret files into what Airflow reads, escaping every character (Airflow's ``*_CMD`` options).

    secrets.py url TEMPLATE_URL PASSWORD_FILE   the URL with the file's password in it, percent-escaped
    secrets.py value FILE                       the file's value without its final newline
    secrets.py passwords USER=FILE...           the simple auth manager's passwords JSON

A secret is one file holding the value; a final newline (an editor's) is not part of it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def value(path: str) -> str:
    return Path(path).read_text(encoding="utf-8").rstrip("\r\n")


def url(template: str, password_file: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(template).set(password=value(password_file)).render_as_string(hide_password=False)


def passwords(pairs: list[str]) -> str:
    return json.dumps({user: value(path) for user, path in (pair.split("=", 1) for pair in pairs)})


def main(argv: list[str]) -> int:
    if len(argv) >= 3 and argv[0] == "url":
        out = url(argv[1], argv[2])
    elif len(argv) == 2 and argv[0] == "value":
        out = value(argv[1])
    elif len(argv) >= 2 and argv[0] == "passwords":
        out = passwords(argv[1:])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    sys.stdout.write(out)  # no newline: Airflow uses a *_CMD's output as it is
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
