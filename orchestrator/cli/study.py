"""``orchestrator report|trials export|ui``: a study read back from the tracking store (no ray, no torch)."""

from __future__ import annotations

from pathlib import Path

import click

from orchestrator.paths import check_output_file
from orchestrator.settings import default_tracking_uri
from orchestrator.tracking.server import DEFAULT_UI_PORT

from . import options


@click.command()
@click.argument("study")
@options.tracking_uri()
@options.spaces
@click.option("--format", "fmt", type=click.Choice(["table", "markdown", "json"]), default="table", show_default=True)
def report(study: str, tracking_uri: str | None, spaces: Path, fmt: str) -> None:
    """The leaderboard across the versions of STUDY (a study name or folder): best value, trials,
    carried and dropped trials, and what changed between versions."""
    from orchestrator.evolution.report import render_report, study_report
    from orchestrator.spaces import load_study
    from orchestrator.tracking.mlflow_store import open_store

    folder = Path(study) if Path(study).is_dir() else spaces / study
    versions = load_study(folder).versions if folder.is_dir() else None
    name = next(iter(versions.values())).study if versions else study
    result = study_report(open_store(tracking_uri or default_tracking_uri()), name, versions)
    if not result.versions:
        raise click.ClickException(f"no versions or trials of study {name!r} found")
    click.echo(render_report(result, fmt))


@click.group()
def trials() -> None:
    """Read back the trials of a study."""


@trials.command("export")
@click.argument("study")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Parquet file to write.")
@options.tracking_uri()
@click.option("--metric", help="Add final_<metric> and best_<metric> columns.")
def trials_export(study: str, out: Path, tracking_uri: str | None, metric: str | None) -> None:
    """Write one row per trial of STUDY (all versions) to a Parquet file."""
    import time

    from orchestrator.tracking import ledger
    from orchestrator.tracking.mlflow_store import open_store

    check_output_file(out)  # before reading the whole study
    store = open_store(tracking_uri or default_tracking_uri())
    as_of = int(time.time() * 1000)
    rows = store.trials(study)
    if not rows:
        raise click.ClickException(f"no trials of study {study!r} in the tracking store")
    n = ledger.write(rows, out, metric, as_of_ms=as_of)
    click.echo(f"wrote {n} trials of {study} to {out}")


@click.command()
@click.argument("study", required=False)
@options.tracking_uri()
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=DEFAULT_UI_PORT,
    show_default=True,
    help="Port on 127.0.0.1 for a local store's UI.",
)
def ui(study: str | None, tracking_uri: str | None, port: int) -> None:
    """The MLflow UI with links to STUDY's experiment and best run: a local store is served on
    127.0.0.1 until Ctrl-C; for a team server (http/https) the links are printed."""
    from orchestrator.review.ui import open_ui

    open_ui(tracking_uri or default_tracking_uri(), study, port, echo=click.echo)
