"""ConvNet-digits as a tabular multi-fidelity benchmark: real learning curves, trained once and cached.

Running 10+ seeds x several searchers x 60 trials of real training would take hours on 2 cores, so this module
does what LCBench and NAS-Bench-201 do: it trains every configuration of a small *discrete* grid over the
``convnet`` trainable's own parameters for ``max_epochs`` epochs, records the validation metrics of every epoch,
and writes the table to a cache file. A search then asks ``table.curve(values, epoch)`` instead of training,
in microseconds, and sees the curves a real search of this grid would see (same seed: same split, same
initialization, same batch order).

The training is the product's: ``trainables.create("convnet")`` (``trainables.loop.run_trainable``: the
convnet family's ``build_task``, the shared loop's ``fit``), in this process, on the CPU, scikit-learn's bundled
digits, the trainable's own seeded train/validation split. The loss a search minimises is the shipped study's
metric (``search_spaces/convnet_digits/v1.yaml``: ``val_accuracy``, max) through ``Metric.loss``.

The grid is in the space-file syntax that ``bench.spacetools.make_version`` reads (``CONVNET_PARAMS``; choices
only, so every value a searcher suggests is in the table), with ``CONVNET_SCHEDULE`` the ASHA budget (9 epochs,
grace 1, reduction 3: rungs 1 and 3). The curves cross, mildly (``crossing_summary`` measures how much): on the
full grid, seed 0, 1e-2 leads after one epoch on average, the best final configs use 1e-3 and 3e-3, 3e-2 starts
well and falls behind, 1e-1 mostly stays at chance; epoch 1 against epoch 9 has a rank correlation of 0.85.

    python -m bench.convnet_curves --quick   # 24 configs: 1 minute here (load average 7)
    python -m bench.convnet_curves           # 144 configs: 10 minutes here (load average 8; 4 CPU-minutes)
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from bench import common
from bench.search_quality import ListReporter
from bench.spacetools import make_version
from orchestrator.spaces import Metric, SearchSpace, StudyVersion, load_version
from orchestrator.spaces.space import Param

STUDY_FILE = common.ROOT / "search_spaces" / "convnet_digits" / "v1.yaml"
CACHE_DIR = common.RESULTS / "convnet_curves"
TABLE_FORMAT = 1  # bump when the table's layout or the way it is trained changes: old cache files stop matching
TRAINABLE = "convnet"

LEARNING_RATES = [3.0e-4, 1.0e-3, 3.0e-3, 1.0e-2, 3.0e-2, 1.0e-1]  # slow to fast: the curves cross

# 6 learning rates x 2 x 2 x 3 x 2 = 144 configs
CONVNET_PARAMS: dict[str, Any] = {
    "optimizer": {"choice": [{"name": "adam", "lr": {"choice": LEARNING_RATES}}]},
    "filters": {"choice": [8, 32]},
    "fc_width": {"choice": [32, 128]},
    "dropout": {"choice": [0.0, 0.25, 0.5]},
    "batch_size": {"choice": [32, 128]},
}
# 6 x 2 x 2 = 24 configs
CONVNET_QUICK_PARAMS: dict[str, Any] = {
    "optimizer": CONVNET_PARAMS["optimizer"],
    "filters": {"choice": [16]},
    "dropout": {"choice": [0.0, 0.5]},
    "batch_size": {"choice": [32, 128]},
}
CONVNET_SCHEDULE: dict[str, Any] = {"scheduler": "asha", "max_epochs": 9, "grace_period": 1, "reduction_factor": 3}


def study() -> StudyVersion:
    """The shipped ConvNet-digits study: its metric and its fixed section (the data, the split) are the table's."""
    return load_version(STUDY_FILE)


def grid_version(params: Mapping[str, Any]) -> StudyVersion:
    """The grid as a validated version of its own (the ``convnet`` trainable, the study's metric)."""
    metric = study().metric
    return make_version("convnet_curves", params, trainable=TRAINABLE, metric=(metric.name, metric.mode))


# --------------------------------------------------------------------------- the grid


def grid_configs(space: SearchSpace) -> list[dict[str, Any]]:
    """Every configuration of a discrete space, in file order (the last parameter varies fastest).

    Choices (plain values and sub-spaces), fixed values and stepped kinds (``int``, ``quniform``,
    ``qloguniform``: every step) make a grid; a continuous parameter is a ``ValueError``."""
    axes = [[(name, value) for value in _grid_values(name, p)] for name, p in space.params.items()]
    return [dict(combination) for combination in itertools.product(*axes)]


def _grid_values(label: str, p: Param) -> list[Any]:
    if p.is_fixed:
        return [p.default_value]
    if p.is_choice:
        values: list[Any] = []
        for i, option in enumerate(p.options):
            sub = p.sub_space(i)
            values += [option] if sub is None else grid_configs(sub)
        return values
    if p.is_stepped:
        return [p.value_at(k) for k in range(p.steps + 1)]
    raise ValueError(f"{label}: {p.describe()} has no finite grid; use choice, int or quantized parameters")


def config_key(values: Mapping[str, Any]) -> str:
    """The table's key of a configuration: stable under key order, numpy scalars and ``32.0`` for ``32``
    (what a quantized draw returns), never confusing ``True`` with ``1``."""
    return json.dumps(_plain(values), sort_keys=True, separators=(",", ":"))


def _plain(x: Any) -> Any:
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    if isinstance(x, float) and x.is_integer():
        return int(x)
    return x


# --------------------------------------------------------------------------- the table


@dataclass
class CurveTable:
    """Per-epoch validation metrics of every configuration of a grid, trained with one seed.

    ``history[name][i, e]`` is metric ``name`` of ``configs[i]`` after epoch ``e + 1``; ``metric`` picks the one
    a search minimises (as ``metric.loss``). ``key`` is what the table was trained from (the cache key's text).
    """

    configs: list[dict[str, Any]]
    history: dict[str, np.ndarray]
    seconds: list[float]
    key: dict[str, Any]
    metric: Metric = field(default_factory=lambda: study().metric)

    def __post_init__(self) -> None:
        self._index = {config_key(c): i for i, c in enumerate(self.configs)}
        if len(self._index) != len(self.configs):
            raise ValueError("the grid lists a configuration twice")
        shapes = {name: values.shape for name, values in self.history.items()}
        if any(shape != (len(self.configs), self.max_epochs) for shape in shapes.values()):
            raise ValueError(f"history shapes {shapes} do not match {len(self.configs)} configs x {self.max_epochs}")
        if self.metric.name not in self.history:
            raise ValueError(f"metric {self.metric.name!r} not recorded; the table has {sorted(self.history)}")

    @property
    def max_epochs(self) -> int:
        return int(self.key["max_epochs"])

    @property
    def losses(self) -> np.ndarray:
        """(configs, epochs): the metric as a loss to minimise, by the product's rule (``Metric.loss``)."""
        return np.vectorize(self.metric.loss, otypes=[float])(self.history[self.metric.name])

    def index(self, values: Mapping[str, Any]) -> int:
        """The row of a configuration (a searcher's suggestion: values, as the space lists them)."""
        try:
            return self._index[config_key(values)]
        except KeyError:
            raise KeyError(f"{dict(values)!r} is not a configuration of this grid") from None

    def curve(self, values: Mapping[str, Any], epoch: int) -> float:
        """The loss of configuration ``values`` after ``epoch`` (1-based) epochs: what a search would see."""
        if not 1 <= epoch <= self.max_epochs:
            raise ValueError(f"epoch {epoch} outside 1..{self.max_epochs}")
        return float(self.metric.loss(float(self.history[self.metric.name][self.index(values), epoch - 1])))

    def with_metric(self, metric: Metric) -> CurveTable:
        """The same curves, minimising another recorded metric (``Metric("val_loss", "min")``)."""
        return replace(self, metric=metric)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": TABLE_FORMAT,
            "key": self.key,
            "configs": self.configs,
            "history": {name: values.tolist() for name, values in self.history.items()},
            "seconds": self.seconds,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CurveTable:
        if data.get("format") != TABLE_FORMAT:
            raise ValueError(f"table format {data.get('format')!r}, expected {TABLE_FORMAT}")
        history = {name: np.asarray(values, dtype=float) for name, values in data["history"].items()}
        return cls(list(data["configs"]), history, list(data["seconds"]), dict(data["key"]))


def reference_best(table: CurveTable) -> float:
    """The best final loss of the whole grid: the optimum a search of it can reach."""
    return float(table.losses[:, -1].min())


# --------------------------------------------------------------------------- training and the cache


def table_key(params: Mapping[str, Any], max_epochs: int, seed: int) -> dict[str, Any]:
    """Everything the curves depend on: the grid, the budget, the seed, the study's fixed section, the
    trainable's defaults and torch's version (a cache file made from anything else does not match)."""
    import torch

    from trainables.registry import get

    key = {
        "format": TABLE_FORMAT,
        "params": grid_version(params).params.canonical(),
        "max_epochs": int(max_epochs),
        "seed": int(seed),
        "fixed": dict(study().fixed),
        "trainable_defaults": dict(get(TRAINABLE).optional),
        "torch": torch.__version__,
    }
    return json.loads(json.dumps(key))  # plain JSON, as a cache file reads back


def cache_path(cache_dir: Path, key: Mapping[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return Path(cache_dir) / f"convnet-curves-{digest}.json"


def train_curves(
    params: Mapping[str, Any],
    max_epochs: int,
    seed: int = 0,
    *,
    threads: int = 1,
    progress: Callable[[str], None] | None = print,
) -> CurveTable:
    """Train every configuration of the grid ``params`` for ``max_epochs`` epochs with the product's convnet
    trainable, in this process, on ``threads`` CPU threads; ``progress`` gets a line per configuration."""
    from trainables import create

    train = create(TRAINABLE)
    fixed = study().fixed
    configs = grid_configs(grid_version(params).params)
    history: dict[str, list[list[float]]] = {}
    seconds: list[float] = []
    start = time.perf_counter()
    for i, config in enumerate(configs, start=1):
        reporter = ListReporter()
        t0 = time.perf_counter()
        try:
            train(
                {**fixed, **config, "max_epochs": max_epochs, "seed": seed, "cpus": threads, "device": "cpu"}, reporter
            )
        except Exception as error:
            error.add_note(f"while training grid configuration {i}/{len(configs)}: {config}")
            raise
        seconds.append(time.perf_counter() - t0)
        for name in reporter.metrics[0]:
            history.setdefault(name, []).append([m[name] for m in reporter.metrics])
        if progress is not None:
            progress(
                f"  {i}/{len(configs)} configs, {time.perf_counter() - start:.0f} s (this one {seconds[-1]:.1f} s)"
            )
    arrays = {name: np.asarray(rows, dtype=float) for name, rows in history.items()}
    return CurveTable(configs, arrays, seconds, table_key(params, max_epochs, seed))


def load_or_train(
    params: Mapping[str, Any],
    max_epochs: int,
    seed: int = 0,
    *,
    cache_dir: Path = CACHE_DIR,
    threads: int = 1,
    progress: Callable[[str], None] | None = print,
) -> CurveTable:
    """The table from ``cache_dir`` when one was trained from the same key (``table_key``), else trained now
    (``train_curves``) and written there."""
    key = table_key(params, max_epochs, seed)
    path = cache_path(cache_dir, key)
    if path.is_file():
        table = CurveTable.from_json(json.loads(path.read_text()))
        if table.key == key:  # a digest collision or a hand-edited file is retrained
            if progress is not None:
                progress(f"ConvNet curves from {path}")
            return table
    if progress is not None:
        progress(
            f"training {len(grid_configs(grid_version(params).params))} ConvNet configs x {max_epochs} epochs "
            f"(seed {seed}) -> {path}"
        )
    table = train_curves(params, max_epochs, seed, threads=threads, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(json.dumps(table.to_json(), separators=(",", ":")) + "\n")
    partial.replace(path)  # atomic: a reader never sees half a table
    return table


@dataclass(frozen=True)
class ConvNetProblem:
    """What a multi-fidelity search harness takes: the objective, the grid (space-file syntax), the ASHA budget."""

    table: CurveTable
    params: Mapping[str, Any]
    schedule: Mapping[str, Any]

    @property
    def curve(self) -> Callable[[Mapping[str, Any], int], float]:
        """``curve(values, epoch) -> loss``, looked up in the table."""
        return self.table.curve

    @property
    def optimum(self) -> float:
        return reference_best(self.table)


def problem(
    quick: bool,
    *,
    seed: int = 0,
    epochs: int = CONVNET_SCHEDULE["max_epochs"],
    cache_dir: Path = CACHE_DIR,
    threads: int = 1,
    progress: Callable[[str], None] | None = print,
) -> ConvNetProblem:
    """The ConvNet-digits problem of the quick grid (``CONVNET_QUICK_PARAMS``) or the full one, trained or
    read from the cache (``load_or_train``), with ``CONVNET_SCHEDULE`` over ``epochs`` epochs."""
    params = CONVNET_QUICK_PARAMS if quick else CONVNET_PARAMS
    table = load_or_train(params, epochs, seed, cache_dir=cache_dir, threads=threads, progress=progress)
    return ConvNetProblem(table, params, {**CONVNET_SCHEDULE, "max_epochs": epochs})


# --------------------------------------------------------------------------- do the curves cross?


def rank_correlation(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rho (ties get their average rank)."""
    from scipy.stats import spearmanr

    rho = spearmanr(a, b).statistic
    return float(rho) if math.isfinite(rho) else 0.0


def rungs(schedule: Mapping[str, Any]) -> list[int]:
    """ASHA's rung epochs below ``max_epochs``: grace, grace x reduction, ..."""
    out, epoch = [], int(schedule["grace_period"])
    while epoch < schedule["max_epochs"]:
        out.append(epoch)
        epoch = round(epoch * schedule["reduction_factor"])
    return out


def crossing_summary(table: CurveTable, schedule: Mapping[str, Any] = CONVNET_SCHEDULE) -> dict[str, Any]:
    """How misleading early epochs are. Per rung: the rank correlation with the final loss across the grid, the
    final loss of the configuration that leads at that rung (against the grid's best), and the share of the best
    tenth (by final loss) that would pass the rung's cut if the whole grid reached it (ASHA keeps the best
    1 / reduction_factor). Per learning rate: the mean loss after the first rung and at the end (fast rates
    lead early when the curves cross)."""
    losses, final = table.losses, table.losses[:, -1]
    best = reference_best(table)
    top_final = np.argsort(final, kind="stable")[: max(1, round(0.1 * len(final)))]
    rung_epochs, by_rung = rungs(schedule), {}
    for epoch in rung_epochs:
        at_rung = losses[:, epoch - 1]
        leader = int(np.argmin(at_rung))
        cut = np.quantile(at_rung, 1 / schedule["reduction_factor"])
        by_rung[epoch] = {
            "spearman_vs_final": rank_correlation(at_rung, final),
            "leader_final": float(final[leader]),
            "leader_regret": float(final[leader] - best),
            "best_tenth_kept": float(np.mean(at_rung[top_final] <= cut)),
            "leader": table.configs[leader],
        }
    first = rung_epochs[0] if rung_epochs else 1
    rate_of = [_learning_rate(c) for c in table.configs]
    by_rate = {}
    for rate in sorted({rate for rate in rate_of if rate is not None}):
        rows = [i for i, r in enumerate(rate_of) if r == rate]
        by_rate[rate] = {
            "configs": len(rows),
            "mean_first_rung": float(losses[rows, first - 1].mean()),
            "mean_final": float(final[rows].mean()),
            "best_final": float(final[rows].min()),
        }
    return {
        "configs": len(table.configs),
        "max_epochs": table.max_epochs,
        "metric": f"{table.metric.name} ({table.metric.mode}), loss = Metric.loss",
        "reference_best": best,
        "best_config": table.configs[int(np.argmin(final))],
        "train_seconds": float(sum(table.seconds)),
        "rungs": by_rung,
        "learning_rates": by_rate,
    }


def _learning_rate(config: Mapping[str, Any]) -> float | None:
    optimizer = config.get("optimizer")
    return optimizer.get("lr") if isinstance(optimizer, Mapping) else None


def report(summary: Mapping[str, Any]) -> None:
    rung_rows = [
        [
            epoch,
            r["spearman_vs_final"],
            r["best_tenth_kept"],
            r["leader_final"],
            r["leader_regret"],
            config_key(r["leader"]),
        ]
        for epoch, r in summary["rungs"].items()
    ]
    rate_rows = [
        [rate, r["configs"], r["mean_first_rung"], r["mean_final"], r["best_final"]]
        for rate, r in summary["learning_rates"].items()
    ]
    common.print_table(
        ["rung epoch", "spearman vs final", "best tenth kept", "leader's final loss", "regret", "leader"],
        rung_rows,
        title=f"{summary['configs']} configs x {summary['max_epochs']} epochs: best final loss "
        f"{common.fmt(summary['reference_best'])} ({config_key(summary['best_config'])})",
    )
    common.print_table(
        ["lr", "configs", "mean loss at first rung", "mean final loss", "best final loss"],
        rate_rows,
        title="by learning rate",
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = common.parser(__doc__)
    p.add_argument("--seed", type=int, default=0, help="the trainable's seed: split, initialization, batch order")
    p.add_argument("--epochs", type=int, default=CONVNET_SCHEDULE["max_epochs"], help="epochs per config")
    p.add_argument("--threads", type=int, default=1, help="torch threads for training (default 1)")
    p.add_argument("--cache", type=Path, default=CACHE_DIR, help=f"cache folder (default {CACHE_DIR})")
    args = common.parse_args(p, argv)
    t0 = time.perf_counter()
    grid = problem(args.quick, seed=args.seed, epochs=args.epochs, cache_dir=args.cache, threads=args.threads)
    summary = {**crossing_summary(grid.table, grid.schedule), "seconds": time.perf_counter() - t0}
    report(summary)
    return common.finish("convnet_curves", args.quick, summary, args.out)


if __name__ == "__main__":
    main()
