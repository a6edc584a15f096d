"""Per-class models vs one all-classes model: validation Jaccard per class, side by side, on the synthetic scenes.

The seed's claim (issue 14) is that one U-Net per class beats one U-Net for all classes. On the synthetic
DSTL-layout data of the ``unet`` family (same scenes, same validation images: ``split_seed`` is fixed) each
seed trains, through the shared loop (``trainables.loop.run_trainable``, what every trial runs, without Ray):

- **all**: one model for all K classes, E epochs;
- **per class, same total**: one model per class, E/K epochs each (``orchestrator train --per-class`` with the
  same total epochs as the all-classes model: the comparison the issue asks for);
- **per class, E each**: one model per class, E epochs each (K times the compute, for reference).

Each model is scored by its last epoch's ``val_jaccard_<class>``; the table shows medians over the seeds
and the verdict compares the mean over classes of the medians (same total epochs).

    python -m bench.per_class --quick     # 2 classes, tiny U-Nets, 4 epochs, 3 seeds: about 2.5 minutes on 2 cores
    python -m bench.per_class             # 3 classes, larger U-Nets and scenes, 12 epochs, 3 seeds
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from bench import common

NAME = "per_class"
TRAINABLE = "unet"
SAME_TOTAL = "per_class_same_total"  # E/K epochs per class model
EACH_FULL = "per_class_e_each"  # E epochs per class model
ALL = "all_classes"
ARMS = (ALL, SAME_TOTAL, EACH_FULL)
ARM_LABELS = {ALL: "all classes (E)", SAME_TOTAL: "per class (E/K each)", EACH_FULL: "per class (E each)"}
# (quick, full) sizes of the U-Net and the synthetic scenes
SIZES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "config": (
        {
            "scenes": 6,
            "scene_size": 64,
            "patch": 32,
            "depth": 2,
            "base_filters": 8,
            "samples_per_epoch": 64,
            "batch_size": 16,
            "classes": ["buildings", "water"],
        },
        {
            "scenes": 12,
            "scene_size": 128,
            "patch": 64,
            "depth": 3,
            "base_filters": 16,
            "samples_per_epoch": 256,
            "batch_size": 16,
            "classes": ["buildings", "trees", "water"],
        },
    ),
}
EPOCHS = (4, 12)  # E: (quick, full)
SEEDS = 3


class LastMetrics:
    """A ``trainables.Reporter`` that keeps the last epoch's metrics and no checkpoint (a fresh start each time)."""

    def __init__(self) -> None:
        self.last: dict[str, float] = {}

    def report(self, metrics: Mapping[str, float], checkpoint_dir: str | None = None) -> None:
        self.last = dict(metrics)

    def restore_dir(self) -> str | None:
        return None


def train_once(config: Mapping[str, Any], epochs: int, seed: int) -> dict[str, float]:
    """The last epoch's validation metrics of one model trained for ``epochs`` with ``seed``."""
    from trainables.loop import run_trainable

    reporter = LastMetrics()
    run_trainable(TRAINABLE, {**config, "max_epochs": epochs, "seed": seed, "cpus": common.cpu_count()}, reporter)
    return reporter.last


def per_class_jaccard(
    config: Mapping[str, Any], classes: Sequence[str], epochs: int, seed: int, per_class: bool
) -> dict[str, float]:
    """``val_jaccard_<class>`` of each class: from one all-classes model, or from one model per class."""
    if not per_class:
        metrics = train_once(config, epochs, seed)
        return {c: metrics[f"val_jaccard_{c}"] for c in classes}
    return {c: train_once({**config, "per_class": c}, epochs, seed)[f"val_jaccard_{c}"] for c in classes}


def compare(config: Mapping[str, Any], epochs: int, seeds: int) -> dict[str, Any]:
    """Every arm for every seed (interleaved, so load on the machine hits them alike), medians per class."""
    classes = list(config["classes"])
    per_model = {ALL: epochs, SAME_TOTAL: max(1, epochs // len(classes)), EACH_FULL: epochs}
    runs: dict[str, list[dict[str, float]]] = {arm: [] for arm in ARMS}
    seconds = dict.fromkeys(ARMS, 0.0)
    for seed in range(seeds):
        for arm in ARMS:
            with common.Timer() as t:
                runs[arm].append(per_class_jaccard(config, classes, per_model[arm], seed, per_class=arm != ALL))
            seconds[arm] += t.s
    medians = {arm: {c: statistics.median(run[c] for run in runs[arm]) for c in classes} for arm in ARMS}
    means = {arm: statistics.fmean(medians[arm].values()) for arm in ARMS}
    better = [c for c in classes if medians[SAME_TOTAL][c] > medians[ALL][c]]
    return {
        "classes": classes,
        "epochs_all_classes": epochs,
        "epochs_per_model": per_model,
        "seeds": seeds,
        "total_epochs": {arm: per_model[arm] * (1 if arm == ALL else len(classes)) for arm in ARMS},
        "median_jaccard": medians,
        "mean_of_medians": means,
        "runs": runs,
        "train_s": {arm: round(s, 2) for arm, s in seconds.items()},
        "per_class_helps_same_total_epochs": means[SAME_TOTAL] > means[ALL],
        "classes_better_per_class_same_total": better,
    }


def verdict(result: Mapping[str, Any]) -> str:
    means = result["mean_of_medians"]
    gain = means[SAME_TOTAL] - means[ALL]
    helps = "holds" if result["per_class_helps_same_total_epochs"] else "does not hold"
    return (
        f"the seed's claim (per-class helps) {helps} here at the same total epochs: mean Jaccard "
        f"{means[SAME_TOTAL]:.4f} per class vs {means[ALL]:.4f} all classes ({gain:+.4f}); better for "
        f"{len(result['classes_better_per_class_same_total'])} of {len(result['classes'])} classes; "
        f"with E epochs each (K times the compute): {means[EACH_FULL]:.4f}"
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = common.parser(__doc__)
    p.add_argument(
        "--epochs", type=int, help=f"E, the all-classes model's epochs (default {EPOCHS[0]} quick, {EPOCHS[1]} full)"
    )
    p.add_argument("--seeds", type=int, default=SEEDS, help="seeds per arm; medians over them (default %(default)s)")
    args = common.parse_args(p, argv, sizes={"epochs": EPOCHS})
    config = SIZES["config"][0 if args.quick else 1]
    result = compare(config, args.epochs, args.seeds)
    classes = result["classes"]
    rows = [
        [
            c,
            *(result["median_jaccard"][arm][c] for arm in ARMS),
            result["median_jaccard"][SAME_TOTAL][c] - result["median_jaccard"][ALL][c],
        ]
        for c in classes
    ]
    rows.append(
        [
            "mean",
            *(result["mean_of_medians"][arm] for arm in ARMS),
            result["mean_of_medians"][SAME_TOTAL] - result["mean_of_medians"][ALL],
        ]
    )
    epochs = result["epochs_per_model"]
    common.print_table(
        ["class", *(f"{ARM_LABELS[arm]}: {epochs[arm]} ep" for arm in ARMS), "per class - all (same total)"],
        rows,
        f"validation Jaccard per class, median of {args.seeds} seeds ({TRAINABLE} on synthetic scenes, "
        f"{result['total_epochs'][SAME_TOTAL]} vs {result['total_epochs'][ALL]} total epochs)",
    )
    result["verdict"] = verdict(result)
    print("\n" + result["verdict"], flush=True)
    return common.finish(NAME, args.quick, {"config": config, **result}, args.out)


if __name__ == "__main__":
    main()
