"""What the command groups share: the consoles, the error handling of every command (:func:`friendly`), the
settings, JSON output, table style, logging setup and the app's ``--debug`` / ``--version`` options."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import click
import typer
from rich.box import SIMPLE_HEAD
from rich.console import Console
from rich.text import Text

from pipeline.config import Settings, load_settings
from pipeline.errors import Interrupted, UsageError, explain, redact

out = Console(soft_wrap=True)  # the terminal's width; piped: COLUMNS, else 80
err = Console(stderr=True)
BOX = SIMPLE_HEAD  # fewer rules: tables fit 80 columns

_DEBUG = {"on": False}
_ERRORS = logging.getLogger("nightscore.errors")
_ERRORS.propagate = False  # tracebacks go to the log file only (and to the terminal with --debug)
_ERRORS.addHandler(logging.NullHandler())  # no log file (no home found): the traceback is dropped, never printed by logging's last resort


def settings() -> Settings:
    """The settings, from the environment."""
    return load_settings()


def _print_version(value: bool) -> None:
    if value:
        import pipeline

        out.print(f"nightscore {pipeline.__version__}")
        raise typer.Exit()


def options(
    debug: bool = typer.Option(False, "--debug", envvar="NIGHTSCORE_DEBUG", help="on an error, print the traceback too"),
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True, help="print the version and exit"),
) -> None:
    """The app's own options (its callback)."""
    _DEBUG["on"] = debug


def cut(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, an ellipsis ending what was cut."""
    return text if len(text) <= width else text[: width - 1] + "…"


def print_json(data: Any) -> None:
    """Machine-readable output for scripts: plain JSON on stdout, nothing else."""
    sys.stdout.write(json.dumps(data, default=str, indent=2) + "\n")


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn every error into one paragraph (what, where, fix) and a non-zero exit code.

    The traceback goes to the log file (``$NIGHTSCORE_HOME/logs/nightscore.log``) and, with ``--debug``, to the terminal."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _setup_logging()
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, click.exceptions.ClickException):  # the command's own exit or usage error
            raise
        except (Interrupted, KeyboardInterrupt) as exc:
            name = getattr(exc, "signal_name", "SIGINT")
            _fail(f"interrupted by {name}; a run in progress was recorded as interrupted and the published data is unchanged.", exc)
            raise typer.Exit(143 if name == "SIGTERM" else 130) from None
        except UsageError as exc:  # a value the command cannot use: exit 2, as for an unknown option
            _fail(f"error: {exc}", exc)
            raise typer.Exit(2) from None
        except Exception as exc:
            _fail(f"error: {explain(exc)}", exc)
            raise typer.Exit(1) from None

    return wrapper


def _setup_logging() -> None:
    """Warnings to the terminal; everything from INFO up, tracebacks included, to ``$NIGHTSCORE_HOME/logs/nightscore.log``."""
    from pipeline.logsetup import setup_logging

    file = setup_logging()
    if file is not None and file not in _ERRORS.handlers:
        _ERRORS.addHandler(file)


def _fail(message: str, exc: BaseException) -> None:
    import traceback

    detail = redact("".join(traceback.format_exception(exc)))
    _ERRORS.error("%s\n%s", message, detail)
    if _DEBUG["on"]:
        err.print(Text(detail, style="dim"))
    err.print(Text(message, style="bold red"), soft_wrap=True)


def ready(s: Settings) -> Any:
    """The database engine, migrated, after reaping runs whose process is gone (every command that uses the
    database does, so a killed run never stays ``running`` for long)."""
    from pipeline.ledger import ready_engine

    return ready_engine(s)


def print_run(state: Any) -> None:
    """One line for a finished run: its counts and model."""
    c = state.counts
    out.print(
        f"run {state.run_id} {state.job} {state.ds}: extracted {c.get('extracted', 0):,}, valid {c.get('valid', 0):,}, "
        f"quarantined {c.get('quarantined', 0):,}, scored {c.get('scored', 0):,}, published {c.get('published', 0):,} "
        f"with {state.model_name} v{state.model_version}" + (" (dry run)" if state.dry_run else "")
    )
