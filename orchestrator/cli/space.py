"""``orchestrator space validate|show|diff|refine|lint``: space files (search_spaces/<study>/vN.yaml)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from orchestrator.settings import DEFAULT_SPACES, default_tracking_uri
from orchestrator.spaces.refine import RefineOptions

from . import options

REFINE_DEFAULTS = RefineOptions()


@click.group()
def space() -> None:
    """Validate, show, compare, lint and refine search-space files (search_spaces/<study>/vN.yaml)."""


def echo_validation(report: object, quiet: bool = False) -> bool:
    """Print a ``ValidationReport``: an ``ok`` line per valid file (unless ``quiet``), every problem on stderr;
    whether it is clean."""
    from orchestrator.spaces.check import ValidationReport

    assert isinstance(report, ValidationReport)
    if not quiet:
        for v in report.valid:
            click.echo(f"ok  {v.study} v{v.version}  {v.short_hash}  {v.source}")
    for problem in report.problems:
        click.echo(str(problem), err=True)
    return not report.problems


@space.command("validate")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--quiet", "-q", is_flag=True, help="Print only problems.")
def space_validate(paths: tuple[Path, ...], quiet: bool) -> None:
    """Check space files, study folders or a folder of studies (default: search_spaces/).

    Exit status 0 when every file is valid; 1 with every problem listed.
    """
    from orchestrator.engine.checks import validate_with_trainables

    report = validate_with_trainables(paths or (Path(DEFAULT_SPACES),))
    n_files = len(report.valid) + report.invalid_files
    if not echo_validation(report, quiet):
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
@options.tracking_uri("Also show how the study's trials in this store carry into NEW (what the next run carries).")
@options.ledger
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
    from orchestrator.tracking.mlflow_store import open_store

    report, source = carry_preview(open_store(tracking_uri), newer, ledger)
    preview = render_carry(report, newer, source, fmt)
    if fmt == "json":
        click.echo(json.dumps({**json.loads(text), "carry": json.loads(preview)}, indent=2))
    else:
        click.echo(f"{text}\n\n{preview}")


@space.command("refine")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@options.tracking_uri()
@click.option(
    "--top",
    type=click.IntRange(min=1),
    help=f"The best K trials, over which the model averages the other parameters (default: the best "
    f"{REFINE_DEFAULTS.top_fraction:.0%}).",
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

    Decides from a model of every usable trial: widens a bound the predicted metric improves toward (never
    past limits), narrows only a region with a small chance of beating the best seen, leaves a parameter that
    barely matters alone, prunes choices on the same evidence; --dry-run shows the evidence per parameter.
    Writes v<N+1>.yaml beside it and never edits a file. The rules: docs/team-workflow.md.
    """
    from orchestrator.evolution.refining import find_target, propose
    from orchestrator.spaces.refine import RefineError
    from orchestrator.tracking.access import require_edit
    from orchestrator.tracking.mlflow_store import open_store

    refine_options = dataclasses.replace(REFINE_DEFAULTS, top=top, min_trials=min_trials)
    target = find_target(path)
    if target.newer:
        newer = ", ".join(f"v{n}" for n in target.newer)
        click.echo(
            f"note: {target.version.label} is not the newest version ({newer} exist); a proposal from it is "
            f"v{target.next_number} with parent v{target.version.version}"
        )
    store = open_store(tracking_uri or default_tracking_uri())
    if not dry_run:  # a teammate with READ may look, not write: refused in one line before the model is fitted
        require_edit(store, target.version.study, f"space refine (writing {target.next_path})")
    try:
        proposal = propose(path, store, refine_options)
    except RefineError as e:
        raise click.ClickException(str(e)) from None
    if dry_run:
        click.echo(proposal.as_diff(), nl=False)
        click.echo("\n".join(proposal.evidence_lines()))
        click.echo(f"(dry run: {proposal.path} not written)")
        return
    written = proposal.write()
    click.echo(f"wrote {written}: {proposal.refinement.version.label}, parent v{proposal.target.version.version}")
    click.echo(proposal.refinement.version.notes)


@space.command("lint")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@options.tracking_uri("Also check that versions with recorded trials in this store were not edited since.")
@click.option("--quiet", "-q", is_flag=True, help="Print only problems.")
def space_lint(paths: tuple[Path, ...], tracking_uri: str | None, quiet: bool) -> None:
    """CI checks for a space repository (default: search_spaces/): validate, unbroken lineage,
    and with --tracking-uri no version edited after its trials were recorded.

    Exit status 0 when clean; 1 with every problem listed.
    """
    from orchestrator.evolution.lint import lint
    from orchestrator.tracking.mlflow_store import open_store

    report = lint(paths or (Path(DEFAULT_SPACES),), open_store(tracking_uri) if tracking_uri else None)
    for problem in report.all_problems:
        click.echo(str(problem), err=True)
    if not report.ok:
        click.echo(f"{len(report.all_problems)} problem(s)", err=True)
        raise SystemExit(1)
    if not quiet:
        checked = f"; {report.versions_with_trials} version(s) with recorded trials unchanged" if tracking_uri else ""
        click.echo(f"{len(report.validation.valid)} file(s) clean{checked}")
