"""The review of a search of several objectives, without a search: the front's pictures, the hypervolume so far, the
importance per objective, the knee's fragment, and the rank tags a search's end writes on its trial runs (a real
SQLite store)."""

from __future__ import annotations

import itertools
import json
import random
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

from orchestrator.engine import pareto
from orchestrator.engine.fronts import log_fronts
from orchestrator.engine.leaderboard import Leaderboard, TrialOutcome, _judged
from orchestrator.review.pareto import REFERENCE, front_artifacts, plot_hypervolume_so_far
from orchestrator.review.search import _figure, _save, best_config_fragment, plot_importance
from orchestrator.spaces import StudyVersion, parse_version
from orchestrator.tracking import schema
from orchestrator.tracking.mlflow_store import MlflowStore

MIN_PIXEL_STD = 0.02  # a blank (single-colour) image has 0

SPACE = """\
study: fronts
version: 1
trainable: analytic
objectives: [{{name: loss, mode: min}}, {{name: acc, mode: max}}{third}]
constraints: {{loss: {{max: 0.9}}}}
fixed: {{function: quadratic}}
params:
  x: {{uniform: [0.0, 1.0]}}
  y: {{uniform: [0.0, 1.0]}}
"""


def version(third: bool = False) -> StudyVersion:
    extra = ", {name: ms, mode: min}" if third else ""
    return parse_version(SPACE.format(third=extra), "fronts/v1.yaml")


def trials(v: StudyVersion, n: int = 24) -> list[TrialOutcome]:
    """A trade-off in x (loss rises, acc rises), y only hurts; ``ms`` (third objective) falls with x."""
    rng = random.Random(0)
    out = []
    for i in range(n):
        x, y = rng.random(), rng.random()
        values = {"loss": x + 0.3 * y, "acc": x - 0.5 * y, "ms": 1 - x + 0.1 * y}
        point = tuple(values[m.name] for m in v.goals)
        row = TrialOutcome(f"t{i}", point[0], 2, "FINISHED", {"x": x, "y": y}, f"run{i}", i, values=point)
        out.append(_judged(row, v.constraints, values))
    return out


def decoded(path: Path) -> np.ndarray:
    import matplotlib.image

    pixels = matplotlib.image.imread(path)
    assert float(np.std(pixels[..., :3])) > MIN_PIXEL_STD
    return pixels


def test_a_two_objective_search_gets_its_front_hypervolume_and_importance_per_objective(tmp_path: Path) -> None:
    v = version()
    board = Leaderboard.of(v, trials(v))
    files, skipped = front_artifacts(v, board, tmp_path, _figure, _save, plot_importance)
    assert skipped == {}
    assert set(files) == {
        schema.pareto_artifact("loss", "acc"),
        schema.BEST_SO_FAR_ARTIFACT,
        *(schema.importance_artifact(name, suffix) for name in ("loss", "acc") for suffix in (".png", ".json")),
    }
    for artifact, path in files.items():
        assert path.name == schema.review_file_name(artifact) and path.parent == tmp_path
        if path.suffix == ".png":
            height, width = decoded(path).shape[:2]
            assert 300 <= width <= 3000 and 200 <= height <= 3000
    for name in ("loss", "acc"):
        numbers = json.loads(files[schema.importance_artifact(name, ".json")].read_text())
        assert numbers["metric"] == name and numbers["trials"] == 24
        assert sum(numbers["importance"].values()) == pytest.approx(1.0, abs=1e-6)
    # y lowers acc twice as much as it raises loss, relative to x: it matters more for acc
    loss_numbers = json.loads(files[schema.importance_artifact("loss", ".json")].read_text())["importance"]
    acc_numbers = json.loads(files[schema.importance_artifact("acc", ".json")].read_text())["importance"]
    assert acc_numbers["y"] > loss_numbers["y"]


def test_three_objectives_get_a_picture_per_pair(tmp_path: Path) -> None:
    v = version(third=True)
    files, _ = front_artifacts(v, Leaderboard.of(v, trials(v)), tmp_path, _figure, _save, plot_importance)
    pairs = {a for a in files if "pareto_" in a}
    assert pairs == {schema.pareto_artifact(*p) for p in (("loss", "acc"), ("loss", "ms"), ("acc", "ms"))}


def test_hypervolume_so_far_never_falls_and_ends_at_the_searchs(tmp_path: Path, monkeypatch) -> None:
    v = version()
    board = Leaderboard.of(v, trials(v))
    drawn: list[list[float]] = []

    class Axes:
        def step(self, x: list[int], y: list[float], **kwargs: object) -> None:
            drawn.append(list(y))

        def __getattr__(self, name: str) -> object:
            return lambda *args, **kwargs: None

    plot_hypervolume_so_far(board, tmp_path / "hv.png", "t", lambda: (None, Axes()), lambda fig, path: path)
    (so_far,) = drawn
    assert all(b >= a for a, b in itertools.pairwise(so_far)) and so_far[-1] > 0
    feasible = [r for r in board.rows if r.feasible]
    losses = [(r.point[0], -r.point[1]) for r in feasible]
    low = [min(c) for c in zip(*losses, strict=True)]
    high = [max(c) for c in zip(*losses, strict=True)]
    scaled = [tuple((p - lo) / (hi - lo) for p, lo, hi in zip(point, low, high, strict=True)) for point in losses]
    assert so_far[-1] == pytest.approx(pareto.hypervolume(scaled, [REFERENCE, REFERENCE]))


def test_the_fragment_pins_the_knee(tmp_path: Path) -> None:
    v = version()
    board = Leaderboard.of(v, trials(v))
    assert board.best is not None
    text = best_config_fragment(v, board.best)
    assert text.startswith(f"# the knee of the front, trial {board.best.trial_id} of fronts v1")
    assert f"loss {board.best.point[0]!r}, acc {board.best.point[1]!r}" in text


@dataclass(frozen=True)
class Plan:
    """What ``log_fronts`` reads of a search's plan."""

    version: StudyVersion
    parent_run_id: str
    trial_kind: str = schema.TRIAL_RUN


def test_every_ranked_trial_run_gets_its_front_and_the_search_run_the_knees_values(tmp_path: Path) -> None:
    v = version()
    store = MlflowStore(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = store.experiment_id(v.study)
    assert experiment is not None
    parent = store.create_run(experiment, "search", {schema.KIND: schema.SEARCH_RUN}, {})
    outcomes = trials(v, n=8)
    runs = {}
    for o in outcomes:
        tags = {schema.KIND: schema.TRIAL_RUN, schema.PARENT: parent, schema.TRIAL_ID: o.trial_id}
        runs[o.trial_id] = store.create_run(experiment, o.trial_id, tags, {})
    unranked = store.create_run(  # a trial that never reported every objective: no point, no tag
        experiment, "t-none", {schema.KIND: schema.TRIAL_RUN, schema.PARENT: parent, schema.TRIAL_ID: "t-none"}, {}
    )
    board = Leaderboard.of(v, [replace(o, run_id="") for o in outcomes])  # the run ids come from the store
    linked = log_fronts(store, Plan(v, parent), board)  # type: ignore[arg-type]
    assert [r.run_id for r in linked.rows] == [runs[r.trial_id] for r in board.rows]
    for row, front in zip(board.rows, board.fronts, strict=True):
        assert store.client.get_run(runs[row.trial_id]).data.tags[schema.PARETO_RANK] == str(front)
    assert schema.PARETO_RANK not in store.client.get_run(unranked).data.tags
    found = store.client.search_runs([experiment], f"tags.`{schema.PARETO_RANK}` = '0'")
    assert {r.info.run_id for r in found} == {runs[r.trial_id] for r in board.front()}
    assert board.best is not None
    assert store.client.get_run(parent).data.metrics[schema.best_metric("acc")] == board.best.point[1]
