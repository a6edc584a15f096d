"""``orchestrator predict``: whole scenes with logged models (``orchestrator.production.predict``)."""

from __future__ import annotations

from pathlib import Path

import click

from orchestrator.production import defaults
from orchestrator.production.rules import DEFAULT_RULES, RULE_SYNTAX, parse_rules
from orchestrator.settings import default_tracking_uri

from . import options


@click.command()
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
@options.tracking_uri()
@click.option(
    "--overlap",
    type=click.FloatRange(0, 1, max_open=True),
    default=defaults.DEFAULT_OVERLAP,
    show_default=True,
    help="Fraction of a window shared with its neighbour.",
)
@click.option(
    "--d4/--no-d4",
    default=defaults.DEFAULT_D4,
    show_default=True,
    help="Average each window over the 8 flips and rotations.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=defaults.DEFAULT_BATCH_SIZE,
    show_default=True,
    help="Windows per forward pass.",
)
@click.option(
    "--threshold",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=defaults.DEFAULT_THRESHOLD,
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
@options.no_live
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

    predict_scenes(
        model_uris,
        images,
        out,
        tracking_uri=tracking_uri or default_tracking_uri(),
        overlap=overlap,
        d4=d4,
        batch_size=batch_size,
        rules=parse_rules(rules),
        threshold=threshold,
        device=device,
        echo=click.echo,
        live=options.live(no_live),
    )
