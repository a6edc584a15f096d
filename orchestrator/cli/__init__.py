"""The ``orchestrator`` command: thin commands over the public API, one module per group of commands.

``space`` (space files), ``search`` (run, resume, train, demo), ``study`` (report, trials export, ui),
``predict``, ``access`` (who may do what with a study on a team server), and the cluster commands (``submit``,
``jobs``). Every command module is imported only when its
command runs or is listed, and imports what it calls inside the command, so read-only commands (``report``,
``ui``, ``space refine/diff/lint``, ``trials export``) load neither ray nor torch (a test checks it).
Shared options are declared once (``options``). Every error is one line starting ``error: `` (bad usage also
names the command's ``--help``), tracebacks only with ``--debug`` (or ``ORCHESTRATOR_DEBUG=1``). The exit status:
0 when the command did what it was asked, 1 when it could not (including a search none of whose trials
finished), 2 for bad usage, 130 when interrupted.
"""

from __future__ import annotations

import atexit
import gc
import importlib
import sys
from typing import Any

import click

from orchestrator import __version__
from orchestrator.settings import debug as debug_from_environment

# Every command: its name -> "module:attribute", imported when used or listed (help).
COMMANDS = {
    "space": "orchestrator.cli.space:space",
    "run": "orchestrator.cli.search:run",
    "resume": "orchestrator.cli.search:resume",
    "train": "orchestrator.cli.search:train",
    "demo": "orchestrator.cli.search:demo",
    "report": "orchestrator.cli.study:report",
    "trials": "orchestrator.cli.study:trials",
    "ui": "orchestrator.cli.study:ui",
    "predict": "orchestrator.cli.predict:predict",
    "access": "orchestrator.cli.access:access",
    "submit": "orchestrator.cluster.cli:submit",
    "jobs": "orchestrator.cluster.cli:jobs",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported only when used or listed."""

    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.lazy = lazy or {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            module, _, attr = self.lazy[name].partition(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="orchestrator")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
def cli(debug: bool) -> None:
    """Versioned search spaces, Ray Tune + HyperOpt TPE searches, every trial in MLflow."""


_FREEZING: list[bool] = []


def _freeze_at_exit() -> None:
    """Once, before anything else registers: at exit (last), freeze the objects the command made, so that Python's
    finalisation does not collect through what it imported (torch, mlflow, ray): a second of a search's exit here."""
    if not _FREEZING:
        _FREEZING.append(True)
        atexit.register(gc.freeze)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: usage errors with help, domain errors as one-liners."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or debug_from_environment()
    _freeze_at_exit()
    try:
        code = cli.main(args=args, prog_name="orchestrator", standalone_mode=False)
    except click.UsageError as e:  # one line, naming where the command's usage is
        where = f" (see `{e.ctx.command_path} --help`)" if e.ctx is not None else ""
        click.echo(f"error: {e.format_message()}{where}", err=True)
        sys.exit(2)
    except click.ClickException as e:  # one prefix for every error: "error: " (click's own is "Error: ")
        from orchestrator.redaction import redact_text

        click.echo(f"error: {redact_text(e.format_message())}", err=True)
        sys.exit(e.exit_code)
    except click.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as e:  # one readable line; the traceback only on request
        if debug:
            raise
        from orchestrator.errors import describe

        click.echo(describe(e), err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
