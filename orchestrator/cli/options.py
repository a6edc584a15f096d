"""Options shared by several commands, each declared once (its name, default and help in one place)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from orchestrator.settings import DEFAULT_SPACES

F = TypeVar("F", bound=Callable[..., Any])

TRACKING_URI_HELP = "MLflow tracking URI; default: $MLFLOW_TRACKING_URI or the local store in .orchestrator/."


def tracking_uri(help: str = TRACKING_URI_HELP) -> Callable[[F], F]:
    """``--tracking-uri``: the store a command reads or writes (``help`` where it means something more)."""
    return click.option("--tracking-uri", help=help)


no_live = click.option("--no-live", is_flag=True, help="Plain log lines even on a terminal.")

no_review = click.option(
    "--no-review-artifacts",
    "no_review",
    is_flag=True,
    help="Log no per-trial review artifacts (model summary, network picture, predictions).",
)

address = click.option(
    "--address", help="Ray cluster address (ray://head:10001, host:port or auto); default: a local Ray."
)

storage = click.option(
    "--storage", help="Where Ray Tune keeps the run's state: a folder or a URI (s3://, gs://, hdfs://)."
)

ledger = click.option(
    "--ledger", type=click.Path(path_type=Path), help="A trials export to read (plus newer runs), as run does."
)

spaces = click.option(
    "--spaces",
    type=click.Path(path_type=Path),
    default=DEFAULT_SPACES,
    show_default=True,
    help="The folder of the space repository (one folder per study).",
)


def live(no_live: bool) -> bool | None:
    """The ``live`` argument of the API from ``--no-live``: off when given, else decided by the terminal."""
    return False if no_live else None
