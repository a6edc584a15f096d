"""The end of ``make demo``: from the last trial's end to the command's end, with every trial's review artifacts there.

``orchestrator demo`` (16 ConvNet trials on the digits, concurrency 2, review artifacts on) in a fresh process with a
fresh state folder (``$ORCHESTRATOR_HOME``), traced by ``bench/startup_trace.py``: when the driver learned that the
last trial completed, when Ray Tune's fit returned, the wait for the per-trial review artifacts, the search's own review
(leaderboard, importance, best model), Ray's shutdown, and when the process ended. ``--before-python`` runs another
checkout's command beside this one's (its own spaces, the same files), taking turns by round. After each run its
MLflow store is read: every trial run must hold ``review/model_summary.txt``, ``review/architecture.png`` and
``review/confusion_matrix.png``, and the search its registered model. The progress lines the end printed are kept.

    python -m bench.demo_tail --quick                                          # 1 round
    python -m bench.demo_tail --rounds 2 --before-python /work/main/.venv/bin/python
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import common

GOAL_TAIL_S = 3.0  # from the last trial's end to the command's end
TRACE_SCRIPT = Path(__file__).with_name("startup_trace.py")
TRIAL_ARTIFACTS = ("review/model_summary.txt", "review/architecture.png", "review/confusion_matrix.png")
STUDY = "convnet_digits"


def run_demo(python: str, home: Path, label: str) -> dict[str, Any]:
    """One ``orchestrator demo`` of ``python``'s checkout in a fresh state folder ``home``."""
    from bench import startup_trace

    venv = Path(python).absolute().parent.parent  # not resolved: the venv's python links to the base one
    repo = venv.parent if venv.name == ".venv" else Path.cwd()
    home.mkdir(parents=True)
    events_file, output = home / "events.json", home / "output.txt"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env |= {"PYTHONUNBUFFERED": "1", "RAY_ADDRESS": "local", "ORCHESTRATOR_HOME": str(home)}
    with output.open("w") as out:
        started = time.time()
        code = subprocess.run(
            [python, str(TRACE_SCRIPT), str(events_file), "--", "demo"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=repo,
            check=False,
        )
        ended = time.time()
    text = output.read_text()
    if code.returncode != 0:
        raise RuntimeError(f"orchestrator demo ({label}) failed ({code.returncode}):\n{text[-3000:]}")
    timeline = startup_trace.timeline(json.loads(events_file.read_text()), started, ended)
    tail = timeline["process_end_s"] - (timeline["last_complete_s"] or 0.0)
    return {
        "python": python,
        "label": label,
        "wall_s": ended - started,
        "tail_s": tail,
        "timeline": timeline,
        "end_lines": [line for line in text.splitlines() if line.startswith("review")],
        "store": artifacts_in(home / "mlflow.db"),
    }


def artifacts_in(db: Path) -> dict[str, Any]:
    """How many of the demo's trial runs hold every review artifact, and the registered model versions."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{db}")
    experiment = client.get_experiment_by_name(STUDY)
    runs = client.search_runs([experiment.experiment_id], "tags.`orchestrator.kind` = 'trial'", max_results=1000)
    complete = 0
    for run in runs:
        files = {a.path for a in client.list_artifacts(run.info.run_id, "review")}
        complete += set(TRIAL_ARTIFACTS) <= files
    models = client.search_model_versions(f"name = '{STUDY}'")
    return {"trial_runs": len(runs), "with_all_review_artifacts": complete, "registered_models": len(models)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = common.parser(__doc__)
    p.add_argument("--rounds", type=int, help="demos per side (1 with --quick, else 2)")
    p.add_argument("--before-python", help="another checkout's Python (e.g. /work/main/.venv/bin/python)")
    args = common.parse_args(p, argv, sizes={"rounds": (1, 2)})
    sides = [("after", sys.executable)] + ([("before", args.before_python)] if args.before_python else [])
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label, _ in sides}
    with common.scratch_dir("demo-tail") as root:
        for round_index in range(args.rounds):
            order = sides if round_index % 2 == 0 else list(reversed(sides))
            for label, python in order:
                print(f"round {round_index + 1}/{args.rounds}: `orchestrator demo` ({label}: {python}) ...", flush=True)
                runs[label].append(run_demo(python, root / f"{label}-{round_index}", label))
    out: dict[str, Any] = {"rounds": args.rounds, "runs": runs, "summary": {}}
    for label, side in runs.items():
        out["summary"][label] = {
            "tail_s_median": statistics.median(r["tail_s"] for r in side),
            "tail_s_max": max(r["tail_s"] for r in side),
            "wall_s_median": statistics.median(r["wall_s"] for r in side),
            "all_artifacts": all(
                r["store"]["with_all_review_artifacts"] == r["store"]["trial_runs"] > 0
                and r["store"]["registered_models"] >= 1
                for r in side
            ),
        }
    after = out["summary"]["after"]
    out["goal"] = {
        "max_tail_s": GOAL_TAIL_S,
        "tail_s": after["tail_s_median"],
        "met": after["tail_s_median"] < GOAL_TAIL_S and after["all_artifacts"],
    }
    report(out)
    return common.finish("demo_tail", args.quick, out, args.out)


# The tail's parts: (label, the timeline's start key, its end key or a span key)
TAIL = (
    ("last trial complete -> tuner.fit done", "last_complete_s", "fit_end_s"),
    ("tuner.fit done -> process end", "fit_end_s", "process_end_s"),
)
SPANS = (
    ("  wait for the per-trial review artifacts", "reviews_wait_s"),
    ("  the search's review (leaderboard, importance, model)", "search_review_s"),
    ("    of which waiting for the best model (review process)", "search_review_model_wait_s"),
)


def report(out: dict[str, Any]) -> None:
    labels = sorted(out["runs"], key=lambda label: label != "before")

    def median(label: str, get: Any) -> float | None:
        values = [v for v in (get(r) for r in out["runs"][label]) if v is not None]
        return statistics.median(values) if values else None

    rows: list[list[Any]] = []
    for what, start, end in TAIL:
        rows.append(
            [what, *(median(label, lambda r, s=start, e=end: _between(r, s, e)) for label in labels)]  # type: ignore[misc]
        )
    for what, key in SPANS:
        rows.append([what, *(median(label, lambda r, k=key: r["timeline"].get(k)) for label in labels)])  # type: ignore[misc]
    rows.append(
        [
            "ray.shutdown",
            *(median(label, lambda r: _between(r, "shutdown_start_s", "shutdown_end_s")) for label in labels),
        ]
    )
    rows.append(["last trial complete -> command end", *(out["summary"][label]["tail_s_median"] for label in labels)])
    rows.append(["whole command", *(out["summary"][label]["wall_s_median"] for label in labels)])
    common.print_table(["seconds (median over rounds)", *labels], rows, "\n`orchestrator demo`: the end")
    for label in labels:
        for run in out["runs"][label]:
            store = run["store"]
            print(
                f"{label}: {store['with_all_review_artifacts']} of {store['trial_runs']} trial runs with every review "
                f"artifact, {store['registered_models']} registered model(s); tail {run['tail_s']:.1f} s; its lines:"
            )
            for line in run["end_lines"]:
                print(f"    {line}")
    g = out["goal"]
    print(
        f"goal: the demo ends < {g['max_tail_s']:.0f} s after its last trial, every review artifact there: "
        f"{g['tail_s']:.2f} s ({'met' if g['met'] else 'NOT met'})"
    )


def _between(run: dict[str, Any], start: str, end: str) -> float | None:
    timeline = run["timeline"]
    if timeline.get(start) is None or timeline.get(end) is None:
        return None
    return timeline[end] - timeline[start]


if __name__ == "__main__":
    main()
