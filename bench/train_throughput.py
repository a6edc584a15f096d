"""Training throughput: samples/s of each trainable's loop vs a bare PyTorch loop of the same model and batches.

Uses ``trainables.throughput.measure_throughput``: the shared training loop and a bare
``forward -> loss -> zero_grad -> backward -> step`` loop over batches made in advance, same model, same
process, interleaved rounds of at least a second, best round of each (medians reported too). Cases: the
``throughput`` configs each registered family declares in its spec (``small``; full runs add ``larger``). On
CUDA each case also runs in FP32 and in mixed precision (the runtime's ``auto``: bf16 autocast where supported,
else fp16 + GradScaler); without CUDA that comparison is skipped with a note.

Needs only torch (and the project): no ray, no mlflow, so it runs on a GPU box as ``python3 -m bench.train_throughput``.

    python -m bench.train_throughput --quick     # 15 timed rounds of >= 2 s per case, small sizes
    python -m bench.train_throughput             # the same, plus a larger size of each model
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from bench import common

GOAL_RATIO = 0.95  # trainable loop >= 0.95 of the bare loop
QUICK_SIZE = "small"  # the throughput case of each family that --quick measures


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def cases(quick: bool, cuda: bool) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, trainable, config) for every measurement: the throughput cases each registered family declares
    (``TrainableSpec.throughput``; only ``small`` when ``quick``), in FP32 and, on CUDA, in mixed precision."""
    from trainables.throughput import benchmarked

    precisions = ["fp32", "auto"] if cuda else ["fp32"]
    out = []
    for spec in benchmarked():
        for size, config in spec.throughput.items():
            if quick and size != QUICK_SIZE:
                continue
            for precision in precisions:
                out.append((f"{spec.name} {size} {precision}", spec.name, {**config, "precision": precision}))
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from trainables.throughput import DEFAULT_MIN_ROUND_S, DEFAULT_ROUNDS, measure_throughput

    p = common.parser(__doc__)
    p.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS, help="timed rounds per side (default %(default)s)")
    p.add_argument("--min-round-s", type=float, default=DEFAULT_MIN_ROUND_S, help="least seconds per round")
    args = p.parse_args(argv)
    rounds = args.rounds
    cuda = cuda_available()
    out: dict[str, Any] = {"rounds": rounds, "cuda": cuda, "cases": {}}
    if not cuda:
        out["note"] = "no CUDA device: mixed precision vs FP32 skipped (CPU runs FP32 only)"
    for label, name, config in cases(args.quick, cuda):
        print(f"{label} ...", flush=True)
        result = measure_throughput(name, config, rounds=rounds, warmup=1, min_round_s=args.min_round_s)
        out["cases"][label] = {"config": config, **asdict(result)}
    add_amp_speedups(out)
    ratios = {k: v["ratio"] for k, v in out["cases"].items()}
    out["goal"] = {"target_ratio": GOAL_RATIO, "ratios": ratios, "met": all(r >= GOAL_RATIO for r in ratios.values())}
    report(out)
    return common.finish("train_throughput", args.quick, out, args.out)


def add_amp_speedups(out: dict[str, Any]) -> None:
    """Mixed precision / FP32 samples per second of the trainable's loop, per model and size."""
    speedups = {}
    for label, case in out["cases"].items():
        if label.endswith(" auto"):
            fp32 = out["cases"].get(label.removesuffix(" auto") + " fp32")
            if fp32:
                speedups[label.removesuffix(" auto")] = case["loop_samples_per_s"] / fp32["loop_samples_per_s"]
    out["amp_speedup"] = speedups


def report(out: dict[str, Any]) -> None:
    rows = [
        [
            label,
            c["device"],
            c["precision"],
            c["threads"],
            c["batch_size"],
            c["loop_samples_per_s"],
            c["bare_samples_per_s"],
            c["ratio"],
            c["ratio_median"],
            c["eval_and_checkpoint_s"],
        ]
        for label, c in out["cases"].items()
    ]
    headers = [
        "case",
        "device",
        "precision",
        "threads",
        "batch",
        "loop samples/s",
        "bare samples/s",
        "loop / bare (best)",
        "loop / bare (median)",
        "eval + ckpt s/epoch",
    ]
    common.print_table(headers, rows, f"Training throughput, best (and median) of {out['rounds']} interleaved rounds")
    if out["amp_speedup"]:
        common.print_table(["model", "mixed precision / FP32"], [[k, v] for k, v in out["amp_speedup"].items()])
    if "note" in out:
        print(f"\nnote: {out['note']}")
    g = out["goal"]
    print(
        f"goal: trainable loop >= {g['target_ratio']} x bare loop: {'met' if g['met'] else 'NOT met'} "
        f"(lowest {min(g['ratios'].values()):.3f})"
    )


if __name__ == "__main__":
    main()
