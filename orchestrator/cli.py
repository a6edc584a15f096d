"""The ``orchestrator`` command: thin commands over the public API.

Light commands (``space ...``, ``submit --help``) import neither torch, ray nor mlflow;
heavy modules are imported inside the commands that need them. Bad usage prints a short
message and the command's help; errors print one line each, tracebacks only with
``--debug`` (or ``ORCHESTRATOR_DEBUG=1``).
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import sys
from pathlib import Path
from typing import Any

import click

from orchestrator import __version__
from orchestrator.production import defaults as predict_defaults
from orchestrator.production.rules import DEFAULT_RULES, RULE_SYNTAX, parse_rules
from orchestrator.spaces.refine import RefineOptions
from orchestrator.tracking.server import DEFAULT_UI_PORT

DEFAULT_SPACES = "search_spaces"
REFINE_DEFAULTS = RefineOptions()


class LazyGroup(click.Group):
    """A group whose heavier subcommands are imported only when used or listed."""

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
    lazy={
        "submit": "orchestrator.cluster.cli:submit",
        "jobs": "orchestrator.cluster.cli:jobs",
        "access": "orchestrator.access_cmd:access",  # per-study permissions on a team server
    },
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="orchestrator")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
def cli(debug: bool) -> None:
    """Versioned search spaces, Ray Tune + HyperOpt TPE searches, every trial in MLflow."""


# --------------------------------------------------------------------------- space


@cli.group()
def space() -> None:
    """Validate, show, compare, lint and refine search-space files (search_spaces/<study>/vN.yaml)."""


@space.command("validate")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--quiet", "-q", is_flag=True, help="Print only problems.")
def space_validate(paths: tuple[Path, ...], quiet: bool) -> None:
    """Check space files, study folders or a folder of studies (default: search_spaces/).

    Exit status 0 when every file is valid; 1 with every problem listed.
    """
    from orchestrator.checks import validate_with_trainables

    report = validate_with_trainables(paths or (Path(DEFAULT_SPACES),))
    if not quiet:
        for v in report.valid:
            click.echo(f"ok  {v.study} v{v.version}  {v.short_hash}  {v.source}")
    for problem in report.problems:
        click.echo(str(problem), err=True)
    n_files = len(report.valid) + report.invalid_files
    if report.problems:
        click.echo(f"{len(report.problems)} problem(s) in {report.invalid_files} of {n_files} file(s)", err=True)
        raise SystemExit(1)
    if not quiet:
        click.echo(f"{n_files} file(s) valid")


@space.command("show")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def space_show(file: Path, fmt: str) -> None:
    """Show a version resolved: hash, lineage, settings and every parameter."""
    from orchestrator.spaces import load_with_lineage
    from orchestrator.spaces.show import render_version

    version, lineage = load_with_lineage(file)
    click.echo(render_version(version, lineage, fmt))


@space.command("diff")
@click.argument("old", type=click.Path(path_type=Path))
@click.argument("new", type=click.Path(path_type=Path), required=False)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "markdown", "json"]),
    default="text",
    show_default=True,
    help="markdown prints a table for pull requests.",
)
@click.option("--tracking-uri", help="Also show how the study's trials carry into NEW (what the next run carries).")
@click.option("--ledger", type=click.Path(path_type=Path), help="A trials export to read (plus newer runs), as run.")
def space_diff(old: Path, new: Path | None, fmt: str, tracking_uri: str | None, ledger: Path | None) -> None:
    """What changed from OLD to NEW; with one file, from its parent to it."""
    import json

    from orchestrator.spaces import load_version, load_with_lineage
    from orchestrator.spaces.diff import diff, render

    if new is None:
        newer, lineage = load_with_lineage(old)
        if len(lineage) < 2:
            raise click.UsageError(f"{old} has no parent to compare with; give two files")
        older = lineage[-2]
    else:
        older, newer = load_version(old), load_version(new)
    text = render(older, newer, diff(older, newer), fmt)
    if tracking_uri is None:
        click.echo(text)
        return
    from orchestrator.evolution.preview import carry_preview, render_carry

    report, source = carry_preview(_open_store(tracking_uri), newer, ledger)
    preview = render_carry(report, newer, source, fmt)
    if fmt == "json":
        click.echo(json.dumps({**json.loads(text), "carry": json.loads(preview)}, indent=2))
    else:
        click.echo(f"{text}\n\n{preview}")


@space.command("refine")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--tracking-uri", help="MLflow tracking URI; default: $MLFLOW_TRACKING_URI or the local store.")
@click.option(
    "--top",
    type=click.IntRange(min=1),
    help=f"Rank on the best K trials (default: the best {REFINE_DEFAULTS.top_fraction:.0%}).",
)
@click.option(
    "--min-trials",
    type=click.IntRange(min=1),
    default=REFINE_DEFAULTS.min_trials,
    show_default=True,
    help="Finished trials needed to refine.",
)
@click.option("--dry-run", is_flag=True, help="Print the proposal as a diff; write nothing.")
def space_refine(path: Path, tracking_uri: str | None, top: int | None, min_trials: int, dry_run: bool) -> None:
    """Propose the next version of a study (PATH: its folder or one v<N>.yaml; default the newest).

    Narrows ranges around the best trials, widens a bound they crowd (within limits), prunes
    choices only on strong evidence; writes v<N+1>.yaml beside it and never edits a file.
    The rules: docs/team-workflow.md.
    """
    from orchestrator.engine.runner import default_tracking_uri
    from orchestrator.evolution.refining import propose
    from orchestrator.spaces.refine import RefineError

    options = dataclasses.replace(REFINE_DEFAULTS, top=top, min_trials=min_trials)
    try:
        proposal = propose(path, _open_store(tracking_uri or default_tracking_uri()), options)
    except RefineError as e:
        raise click.ClickException(str(e)) from None
    if dry_run:
        click.echo(proposal.as_diff(), nl=False)
        click.echo(f"(dry run: {proposal.path} not written)")
        return
    written = proposal.write()
    click.echo(f"wrote {written}: {proposal.refinement.version.label}, parent v{proposal.target.version.version}")
    click.echo(proposal.refinement.version.notes)


@space.command("lint")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--tracking-uri", help="Also check that versions with recorded trials were not edited since.")
@click.option("--quiet", "-q", is_flag=True, help="Print only problems.")
def space_lint(paths: tuple[Path, ...], tracking_uri: str | None, quiet: bool) -> None:
    """CI checks for a space repository (default: search_spaces/): validate, unbroken lineage,
    and with --tracking-uri no version edited after its trials were recorded.

    Exit status 0 when clean; 1 with every problem listed.
    """
    from orchestrator.evolution.lint import lint

    report = lint(paths or (Path(DEFAULT_SPACES),), _open_store(tracking_uri) if tracking_uri else None)
    for problem in report.all_problems:
        click.echo(str(problem), err=True)
    if not report.ok:
        click.echo(f"{len(report.all_problems)} problem(s)", err=True)
        raise SystemExit(1)
    if not quiet:
        checked = f"; {report.versions_with_trials} version(s) with recorded trials unchanged" if tracking_uri else ""
        click.echo(f"{len(report.validation.valid)} file(s) clean{checked}")


# --------------------------------------------------------------------------- search


def _embedded_ray_on_loopback(address: str | None) -> None:
    if not address and not os.environ.get("RAY_ADDRESS"):
        # An embedded Ray serves this process alone: keep it on 127.0.0.1 (read by Ray at import).
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def _search_options(**kw: Any) -> Any:
    _embedded_ray_on_loopback(kw.get("address"))
    from orchestrator.engine.runner import SearchOptions

    return SearchOptions(**kw)


no_review_option = click.option(
    "--no-review-artifacts",
    "no_review",
    is_flag=True,
    help="Log no per-trial review artifacts (model summary, network picture, predictions).",
)


@cli.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--trials", type=click.IntRange(min=1), help="Trials to run (default: the file's search.trials).")
@click.option("--concurrency", type=click.IntRange(min=1), help="Trials at a time (default: what the cluster fits).")
@click.option("--address", help="Ray cluster address (e.g. ray://head:10001 or auto); default: start a local Ray.")
@click.option("--tracking-uri", help="MLflow tracking URI; default: $MLFLOW_TRACKING_URI or a local SQLite store.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the searcher.")
@click.option("--storage", help="Where Ray Tune keeps experiment state: a folder or a URI (s3://, gs://, hdfs://).")
@click.option("--ledger", type=click.Path(path_type=Path), help="A trials export to warm-start from (plus newer runs).")
@click.option("--resume", "resume_", is_flag=True, help="Continue the latest unfinished search of this version.")
@click.option("--no-live", is_flag=True, help="Plain log lines even on a terminal.")
@no_review_option
def run(
    file: Path,
    trials: int | None,
    concurrency: int | None,
    address: str | None,
    tracking_uri: str | None,
    seed: int,
    storage: str | None,
    ledger: Path | None,
    resume_: bool,
    no_live: bool,
    no_review: bool,
) -> None:
    """Run a search for the space FILE: Ray Tune + HyperOpt TPE, every trial in MLflow.

    Earlier trials of the study (any version) that fit FILE are carried into the searcher.
    """
    from orchestrator.engine import runner

    options = _search_options(
        trials=trials,
        concurrency=concurrency,
        address=address,
        tracking_uri=tracking_uri,
        seed=seed,
        storage=storage,
        ledger=ledger,
        live=False if no_live else None,
        review_artifacts=not no_review,
    )
    if resume_:
        from orchestrator.spaces import load_version

        version = load_version(file)
        experiment = runner.latest_unfinished(
            options.storage or runner.default_storage(), version.study, version.version
        )
        if experiment is None:
            raise click.ClickException(f"no unfinished search of {version.label} to resume; run without --resume")
        runner.resume_search(experiment, options, echo=click.echo)
        return
    runner.run_search(file, options, echo=click.echo)


@cli.command()
@click.argument("experiment")
@click.option("--address", help="Ray cluster address; default: start a local Ray.")
@click.option("--tracking-uri", help="Override the tracking URI recorded when the search started.")
@click.option("--no-live", is_flag=True, help="Plain log lines even on a terminal.")
def resume(experiment: str, address: str | None, tracking_uri: str | None, no_live: bool) -> None:
    """Continue a search (or a train) whose driver stopped, from its saved state (EXPERIMENT: its path)."""
    from orchestrator.engine import runner

    options = _search_options(address=address, tracking_uri=tracking_uri, live=False if no_live else None)
    runner.resume_search(experiment, options, echo=click.echo)


@cli.command()
@click.argument("study")
@click.option("--trial", "trial_id", help="The trial to train (its orchestrator.trial_id); default: --best.")
@click.option("--best", is_flag=True, help="Train the study's best finished trial (the default).")
@click.option("--epochs", type=click.IntRange(min=1), help="Epochs of each model (default: the trial's max_epochs).")
@click.option("--per-class", is_flag=True, help="One model per class of the trial's classes, in parallel.")
@click.option(
    "--space",
    type=click.Path(path_type=Path),
    help="The trial's space file, when its search's recorded space cannot be read.",
)
@click.option("--address", help="Ray cluster address; default: start a local Ray.")
@click.option("--tracking-uri", help="MLflow tracking URI; default: $MLFLOW_TRACKING_URI or the local store.")
@click.option("--storage", help="Where Ray Tune keeps the train's state: a folder or a URI (s3://, gs://, hdfs://).")
@click.option("--no-live", is_flag=True, help="Plain log lines even on a terminal.")
@no_review_option
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
    _embedded_ray_on_loopback(address)
    from orchestrator.production.train import train_models

    result = train_models(
        study,
        trial_id=trial_id,
        epochs=epochs,
        per_class=per_class,
        tracking_uri=tracking_uri,
        address=address,
        storage=storage,
        space=space,
        review_artifacts=not no_review,
        live=False if no_live else None,
        echo=click.echo,
    )
    for model in result.models:
        click.echo(f"model {model.model_uri}")


@cli.group()
def trials() -> None:
    """Read back the trials of a study."""


@trials.command("export")
@click.argument("study")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Parquet file to write.")
@click.option("--tracking-uri", help="MLflow tracking URI; default: $MLFLOW_TRACKING_URI or the local store.")
@click.option("--metric", help="Add final_<metric> and best_<metric> columns.")
def trials_export(study: str, out: Path, tracking_uri: str | None, metric: str | None) -> None:
    """Write one row per trial of STUDY (all versions) to a Parquet file."""
    import time

    from orchestrator.engine.runner import default_tracking_uri, open_store
    from orchestrator.tracking import ledger

    ledger.check_out_path(out)  # before reading the whole study
    store = open_store(tracking_uri or default_tracking_uri())
    as_of = int(time.time() * 1000)
    rows = store.trials(study)
    if not rows:
        raise click.ClickException(f"no trials of study {study!r} in the tracking store")
    n = ledger.write(rows, out, metric, as_of_ms=as_of)
    click.echo(f"wrote {n} trials of {study} to {out}")


@cli.command()
@click.argument("study")
@click.option("--tracking-uri", help="MLflow tracking URI; default: $MLFLOW_TRACKING_URI or the local store.")
@click.option(
    "--spaces",
    type=click.Path(path_type=Path),
    default=DEFAULT_SPACES,
    show_default=True,
    help="Where the study's folder is (for what changed between versions).",
)
@click.option("--format", "fmt", type=click.Choice(["table", "markdown", "json"]), default="table", show_default=True)
def report(study: str, tracking_uri: str | None, spaces: Path, fmt: str) -> None:
    """The leaderboard across the versions of STUDY (a study name or folder): best value, trials,
    carried and dropped trials, and what changed between versions."""
    from orchestrator.engine.runner import default_tracking_uri
    from orchestrator.evolution.report import render_report, study_report
    from orchestrator.spaces import load_study

    folder = Path(study) if Path(study).is_dir() else spaces / study
    versions = load_study(folder).versions if folder.is_dir() else None
    name = next(iter(versions.values())).study if versions else study
    result = study_report(_open_store(tracking_uri or default_tracking_uri()), name, versions)
    if not result.versions:
        raise click.ClickException(f"no versions or trials of study {name!r} found")
    click.echo(render_report(result, fmt))


def _open_store(uri: str) -> Any:
    from orchestrator.engine.runner import open_store

    return open_store(uri)


@cli.command()
@click.argument("study", required=False)
@click.option("--tracking-uri", help="MLflow tracking URI; default: $MLFLOW_TRACKING_URI or the local store.")
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
    from orchestrator.engine.runner import default_tracking_uri
    from orchestrator.review.ui import open_ui

    open_ui(tracking_uri or default_tracking_uri(), study, port, echo=click.echo)


# --------------------------------------------------------------------------- predict


@cli.command()
@click.argument("model_uris", nargs=-1, required=True, metavar="MODEL_URI...")
@click.option(
    "--images",
    "images",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="A scene (<dstl folder>/three_band/<id>.tif) or a DSTL folder (all its scenes); repeatable.",
)
@click.option(
    "--out", type=click.Path(path_type=Path), required=True, help="Folder for <id>.tif masks and submission.csv."
)
@click.option("--tracking-uri", help="MLflow tracking URI; default: $MLFLOW_TRACKING_URI or the local store.")
@click.option(
    "--overlap",
    type=click.FloatRange(0, 1, max_open=True),
    default=predict_defaults.DEFAULT_OVERLAP,
    show_default=True,
    help="Fraction of a window shared with its neighbour.",
)
@click.option(
    "--d4/--no-d4",
    default=predict_defaults.DEFAULT_D4,
    show_default=True,
    help="Average each window over the 8 flips and rotations.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=predict_defaults.DEFAULT_BATCH_SIZE,
    show_default=True,
    help="Windows per forward pass.",
)
@click.option(
    "--threshold",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=predict_defaults.DEFAULT_THRESHOLD,
    show_default=True,
    help="Probability that makes a mask.",
)
@click.option(
    "--rule",
    "rules",
    multiple=True,
    metavar="RULE",
    help=f"Post-processing, repeatable: {RULE_SYNTAX}. Default: {DEFAULT_RULES.describe()}.",
)
@click.option("--device", help="torch device (cpu, cuda, cuda:1); default: CUDA when available.")
@click.option("--no-live", is_flag=True, help="Plain progress lines even on a terminal.")
def predict(
    model_uris: tuple[str, ...],
    images: tuple[Path, ...],
    out: Path,
    tracking_uri: str | None,
    overlap: float,
    d4: bool,
    batch_size: int,
    threshold: float,
    rules: tuple[str, ...],
    device: str | None,
    no_live: bool,
) -> None:
    """Predict whole DSTL scenes with one or more logged models (one per class or several classes each):
    GeoTIFF masks (one band per class) and the WKT polygons of submission.csv, in bounded memory."""
    from orchestrator.production.predict import predict_scenes

    if tracking_uri is None:  # the engine (and ray) only for the default: predict's memory is measured
        from orchestrator.engine.runner import default_tracking_uri

        tracking_uri = default_tracking_uri()
    predict_scenes(
        model_uris,
        images,
        out,
        tracking_uri=tracking_uri,
        overlap=overlap,
        d4=d4,
        batch_size=batch_size,
        rules=parse_rules(rules),
        threshold=threshold,
        device=device,
        echo=click.echo,
        live=False if no_live else None,
    )


# --------------------------------------------------------------------------- demo


DEMO_SPACE = "convnet_digits/v1.yaml"


@cli.command()
@click.option("--spaces", type=click.Path(path_type=Path), default=DEFAULT_SPACES, show_default=True)
@click.option("--trials", type=click.IntRange(min=1), help="Trials of the demo search (default: the file's).")
@click.option("--no-search", is_flag=True, help="Only validate and diff the spaces.")
@no_review_option
def demo(spaces: Path, trials: int | None, no_search: bool, no_review: bool) -> None:
    """The README's first command: check the shipped spaces, then run a real small search.

    The search is convnet_digits/v1.yaml (a ConvNet on scikit-learn's bundled digits) on an
    embedded local Ray, every trial logged to the local MLflow store in .orchestrator/.
    """
    from orchestrator.checks import validate_with_trainables
    from orchestrator.spaces import load_with_lineage
    from orchestrator.spaces.diff import diff, render

    click.echo(f"== validating {spaces}/")
    report = validate_with_trainables((spaces,))
    for v in report.valid:
        click.echo(f"ok  {v.study} v{v.version}  {v.short_hash}  {v.source}")
    for problem in report.problems:
        click.echo(str(problem), err=True)
    if report.problems:
        raise SystemExit(1)
    for v in report.valid:
        if v.parent is not None and v.source:
            newer, lineage = load_with_lineage(v.source)
            click.echo(f"\n== what changed in {v.study} v{v.version}")
            click.echo(render(lineage[-2], newer, diff(lineage[-2], newer)))
    if no_search:
        return
    options = _search_options(trials=trials, review_artifacts=not no_review)
    from orchestrator.engine.runner import default_tracking_uri, run_search

    click.echo(f"\n== searching {spaces / DEMO_SPACE}")
    result = run_search(spaces / DEMO_SPACE, options, echo=click.echo)
    click.echo(f"\nbest {result.best_value} after {result.finished} trials in {result.wall_s:.0f}s")
    uri = default_tracking_uri()
    if uri.startswith("sqlite:"):
        click.echo(f"look at every trial: .venv/bin/mlflow ui --backend-store-uri {uri}")


# --------------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> None:
    """Console entry point: usage errors with help, domain errors as one-liners."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("ORCHESTRATOR_DEBUG") == "1"
    try:
        code = cli.main(args=args, prog_name="orchestrator", standalone_mode=False)
    except click.UsageError as e:
        click.echo(f"error: {e.format_message()}\n", err=True)
        if e.ctx is not None:
            click.echo(e.ctx.get_help(), err=True)
        sys.exit(2)
    except click.ClickException as e:
        from orchestrator.redaction import redact_text

        e.message = redact_text(e.message)
        e.show()
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
