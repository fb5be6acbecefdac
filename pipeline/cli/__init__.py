"""The ``nightscore`` command (Typer + Rich): the app, its ``model`` sub-app, and the commands of each group.

One module per group of commands: :mod:`~pipeline.cli.setup` (init, demo-data, quickstart, stop),
:mod:`~pipeline.cli.scoring` (score, backfill), :mod:`~pipeline.cli.ledger` (runs),
:mod:`~pipeline.cli.models` (train, model register/list/promote/rollback), :mod:`~pipeline.cli.monitoring` (evaluate,
report, metrics) and :mod:`~pipeline.cli.jobs` (jobs); :mod:`~pipeline.cli.common` holds what they share.
A command parses its arguments and renders; the work is a function of the library.
"""

from __future__ import annotations

import typer

from pipeline.cli import common, jobs, ledger, models, monitoring, reasons, scoring, setup, shadow

app = typer.Typer(
    help="nightscore: extract, validate, score and publish one day of predictions at a time.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals may hold credentials
)
model_app = typer.Typer(help="The model registry: versions and aliases.", no_args_is_help=True)
app.add_typer(model_app, name="model")
app.callback()(common.options)

# the order of --help
app.command()(setup.init)
app.command("demo-data")(setup.demo_data)
app.command()(models.train)
app.command()(scoring.score)
app.command()(scoring.backfill)
app.command()(ledger.runs)
app.command()(monitoring.evaluate)
app.command()(monitoring.estimate)
app.command()(monitoring.report)
app.command()(reasons.explain)
app.command()(shadow.compare)
app.command()(monitoring.metrics)
app.command()(jobs.jobs)
app.command()(setup.quickstart)
app.command()(setup.stop)
model_app.command("register")(models.model_register)
model_app.command("list")(models.model_list)
model_app.command("promote")(models.model_promote)
model_app.command("rollback")(models.model_rollback)
model_app.command("history")(shadow.model_history)


def main() -> None:  # pragma: no cover
    app()
