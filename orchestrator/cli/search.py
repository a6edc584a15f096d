"""``orchestrator run|resume|train|demo``: the commands that start Ray and run trials (``orchestrator.api``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from orchestrator.settings import default_storage, default_tracking_uri

from . import options
from .space import echo_validation

DEMO_SPACE = "convnet_digits/v1.yaml"


def search_options(**kw: Any) -> Any:
    """The API's ``SearchOptions`` from a command's options; a local Ray is kept on loopback (set before ray loads)."""
    from orchestrator.engine.ray_session import local_ray_on_loopback

    local_ray_on_loopback(kw.get("address"))
    from orchestrator.engine.runner import SearchOptions

    return SearchOptions(**kw)


@click.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--trials", type=click.IntRange(min=1), help="Trials to run (default: the file's search.trials).")
@click.option("--concurrency", type=click.IntRange(min=1), help="Trials at a time (default: what the cluster fits).")
@options.address
@options.tracking_uri()
@click.option("--seed", type=int, help="Seed of the searcher (default: a new one per search, recorded on its run).")
@options.storage
@click.option("--ledger", type=click.Path(path_type=Path), help="A trials export to warm-start from (plus newer runs).")
@click.option("--resume", "resume_", is_flag=True, help="Continue the latest unfinished search of this version.")
@options.no_live
@options.no_review
def run(
    file: Path,
    trials: int | None,
    concurrency: int | None,
    address: str | None,
    tracking_uri: str | None,
    seed: int | None,
    storage: str | None,
    ledger: Path | None,
    resume_: bool,
    no_live: bool,
    no_review: bool,
) -> None:
    """Run a search for the space FILE: Ray Tune + HyperOpt TPE, every trial in MLflow.

    Earlier trials of the study (any version) that fit FILE are carried into the searcher.
    """
    run_options = search_options(
        trials=trials,
        concurrency=concurrency,
        address=address,
        tracking_uri=tracking_uri,
        seed=seed,
        storage=storage,
        ledger=ledger,
        live=options.live(no_live),
        review_artifacts=not no_review,
    )
    from orchestrator import api

    if resume_:
        from orchestrator.engine.runner import latest_unfinished
        from orchestrator.spaces import load_version

        version = load_version(file)
        experiment = latest_unfinished(storage or default_storage(), version.study, version.version)
        if experiment is None:
            raise click.ClickException(f"no unfinished search of {version.label} to resume; run without --resume")
        api.resume_search(experiment, run_options, echo=click.echo)
        return
    api.run_search(file, run_options, echo=click.echo)


@click.command()
@click.argument("experiment")
@options.address
@options.tracking_uri("Override the tracking URI recorded when the search started.")
@options.no_live
def resume(experiment: str, address: str | None, tracking_uri: str | None, no_live: bool) -> None:
    """Continue a search (or a train) whose driver stopped, from its saved state (EXPERIMENT: its path)."""
    run_options = search_options(address=address, tracking_uri=tracking_uri, live=options.live(no_live))
    from orchestrator import api

    api.resume_search(experiment, run_options, echo=click.echo)


@click.command()
@click.argument("study")
@click.option(
    "--trial",
    "trial_id",
    help="The trial to train (its orchestrator.trial_id: any finished trial, a member of the Pareto front as well); "
    "default: --best.",
)
@click.option(
    "--best",
    is_flag=True,
    help="Train the study's best finished trial (several objectives: the knee of its front; the default).",
)
@click.option("--epochs", type=click.IntRange(min=1), help="Epochs of each model (default: the trial's max_epochs).")
@click.option("--per-class", is_flag=True, help="One model per class of the trial's classes, in parallel.")
@click.option(
    "--space",
    type=click.Path(path_type=Path),
    help="The trial's space file, when its search's recorded space cannot be read.",
)
@options.address
@options.tracking_uri()
@options.storage
@options.no_live
@options.no_review
def train(
    study: str,
    trial_id: str | None,
    best: bool,
    epochs: int | None,
    per_class: bool,
    space: Path | None,
    address: str | None,
    tracking_uri: str | None,
    storage: str | None,
    no_live: bool,
    no_review: bool,
) -> None:
    """Train the chosen trial of STUDY for the longer schedule on the Ray cluster (one model, or one per class),
    checkpointed and resumable (`orchestrator resume`), and register each model (STUDY or STUDY-<class>)."""
    if best and trial_id:
        raise click.UsageError("--best and --trial choose the trial two ways; give one")
    run_options = search_options(
        address=address,
        tracking_uri=tracking_uri,
        storage=storage,
        live=options.live(no_live),
        review_artifacts=not no_review,
    )
    from orchestrator import api

    result = api.train_models(
        study, run_options, trial_id=trial_id, epochs=epochs, per_class=per_class, space=space, echo=click.echo
    )
    for model in result.models:
        click.echo(f"model {model.model_uri}")


@click.command()
@options.spaces
@click.option("--trials", type=click.IntRange(min=1), help="Trials of the demo search (default: the file's).")
@click.option("--no-search", is_flag=True, help="Only validate and diff the spaces.")
@options.no_review
def demo(spaces: Path, trials: int | None, no_search: bool, no_review: bool) -> None:
    """The README's first command: check the shipped spaces, then run a real small search.

    The search is convnet_digits/v1.yaml (a ConvNet on scikit-learn's bundled digits) on an
    embedded local Ray, every trial logged to the local MLflow store in .orchestrator/.
    """
    from orchestrator.engine.checks import validate_with_trainables
    from orchestrator.spaces import load_with_lineage
    from orchestrator.spaces.diff import diff, render

    click.echo(f"== validating {spaces}/")
    report = validate_with_trainables((spaces,))
    if not echo_validation(report):
        raise SystemExit(1)
    for v in report.valid:
        if v.parent is not None and v.source:
            newer, lineage = load_with_lineage(v.source)
            click.echo(f"\n== what changed in {v.study} v{v.version}")
            click.echo(render(lineage[-2], newer, diff(lineage[-2], newer)))
    if no_search:
        return
    run_options = search_options(trials=trials, review_artifacts=not no_review)
    from orchestrator import api

    click.echo(f"\n== searching {spaces / DEMO_SPACE}")
    result = api.run_search(spaces / DEMO_SPACE, run_options, echo=click.echo)
    click.echo(f"\nbest {result.best_value} after {result.finished} trials in {result.wall_s:.0f}s")
    uri = default_tracking_uri()
    if uri.startswith("sqlite:"):
        click.echo(f"look at every trial: .venv/bin/mlflow ui --backend-store-uri {uri}")
