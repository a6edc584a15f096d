"""The review of a search of several objectives: its Pareto front pictured, importance per objective, the front
so far.

What :func:`front_artifacts` adds to a search's review (``review.search``) when its space has ``objectives:``
(names in ``tracking.schema``):

* ``review/pareto_<x>_<y>.png`` for each pair of objectives: every trial's values, the feasible front (front 0,
  ``engine.pareto``) in colour, dominated trials in grey, infeasible ones (a constraint broken, or failed) as
  red crosses, the knee (the search's best: the trial whose model is registered) ringed and named. With two
  objectives the front is joined by its attainment staircase (what it dominates lies beyond the steps); with
  three, a pair's picture is a projection, so front members are marked without a line (a member can look
  dominated in one pair).
* ``review/importance_<objective>.png|.json`` for each objective: ``analysis.importance`` with that objective as
  the metric (one computation per objective, as a search of that objective alone would log it).
* ``review/best_so_far.png``: the hypervolume of the feasible trials so far against trials in completion
  order (each objective scaled to [0, 1] over the search's feasible trials, reference point 1.1 in each: the
  worst value seen plus a tenth of the range), the multi-objective counterpart of the best value so far.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from orchestrator.analysis.importance import Importance, ImportanceSkipped, parameter_importance
from orchestrator.engine import pareto
from orchestrator.engine.leaderboard import Leaderboard, TrialOutcome
from orchestrator.errors import failure_line
from orchestrator.spaces import StudyVersion
from orchestrator.tracking import schema

REFERENCE = 1.1  # the hypervolume's reference point in each scaled objective: a tenth of the range past the worst
FRONT_COLOUR = "tab:blue"
KNEE_COLOUR = "tab:orange"

Figure = Callable[[], tuple[Any, Any]]  # a new figure and its axes
Save = Callable[[Any, Path], Path]


def plot_front(board: Leaderboard, x: int, y: int, path: Path, title: str, figure: Figure, save: Save) -> Path:
    """The picture of objectives ``x`` (horizontal) and ``y`` (vertical) of ``board``'s trials, saved at ``path``."""
    fx, fy = board.objectives[x], board.objectives[y]
    best = board.best
    members = {id(r) for r in board.front()}
    groups: dict[str, list[TrialOutcome]] = {"front": [], "dominated": [], "infeasible": []}
    for row in board.rows:
        kind = "infeasible" if not row.feasible else "front" if id(row) in members else "dominated"
        groups[kind].append(row)
    fig, axes = figure()
    if groups["dominated"]:
        axes.scatter(*_xy(groups["dominated"], x, y), color="tab:gray", alpha=0.6, s=18, label="dominated", zorder=2)
    if groups["infeasible"]:
        axes.scatter(*_xy(groups["infeasible"], x, y), color="tab:red", marker="x", s=24, label="infeasible", zorder=2)
    if groups["front"]:
        label = f"Pareto front ({len(groups['front'])})"
        axes.scatter(*_xy(groups["front"], x, y), color=FRONT_COLOUR, s=30, label=label, zorder=3)
        if len(board.objectives) == 2:
            axes.plot(*_staircase(board, groups["front"], x, y), color=FRONT_COLOUR, linewidth=1.2, zorder=3)
    if best is not None:
        bx, by = best.point[x], best.point[y]
        axes.scatter([bx], [by], s=140, facecolors="none", edgecolors=KNEE_COLOUR, linewidths=2, zorder=4)
        xs, ys = _xy(board.rows, x, y)
        right = bx > (min(xs) + max(xs)) / 2  # the name toward the middle, inside the axes
        high = by > (min(ys) + max(ys)) / 2
        axes.annotate(
            f"knee: trial {best.trial_id}",
            (bx, by),
            xytext=(-10 if right else 10, -12 if high else 10),
            textcoords="offset points",
            ha="right" if right else "left",
            va="top" if high else "bottom",
            color=KNEE_COLOUR,
            fontsize=8,
            zorder=5,
        )
    axes.set_xlabel(f"{fx.name} ({fx.mode})")
    axes.set_ylabel(f"{fy.name} ({fy.mode})")
    axes.set_title(f"{title}: Pareto front, {len(board.rows)} trials")
    axes.grid(alpha=0.3)
    axes.legend(loc="best", fontsize=8)
    return save(fig, path)


def _xy(rows: Sequence[TrialOutcome], x: int, y: int) -> tuple[list[float], list[float]]:
    return [r.point[x] for r in rows], [r.point[y] for r in rows]


def _staircase(board: Leaderboard, front: Sequence[TrialOutcome], x: int, y: int) -> tuple[list[float], list[float]]:
    """The attainment staircase of a two-objective front, in the objectives' own values (modes taken care of): the
    boundary of what the front dominates."""
    fx, fy = board.objectives[x], board.objectives[y]
    losses = sorted((fx.loss(r.point[x]), fy.loss(r.point[y])) for r in front)
    xs, ys = [losses[0][0]], [losses[0][1]]
    for lx, ly in losses[1:]:
        xs += [lx, lx]
        ys += [ys[-1], ly]
    back = {"min": 1.0, "max": -1.0}
    return [back[fx.mode] * v for v in xs], [back[fy.mode] * v for v in ys]


def plot_hypervolume_so_far(board: Leaderboard, path: Path, title: str, figure: Figure, save: Save) -> Path:
    """The hypervolume of the feasible trials so far, in completion order (see the module docstring)."""
    ordered = board.completion_order()
    feasible = [r for r in ordered if r.feasible]
    scaled = _scaler(board, feasible)
    so_far, points = [], []
    for row in ordered:
        if row.feasible:
            points.append(scaled(row))
        so_far.append(pareto.hypervolume(points, [REFERENCE] * len(board.objectives)) if points else 0.0)
    trials = list(range(1, len(ordered) + 1))
    fig, axes = figure()
    axes.step(trials, so_far, where="post", color="tab:blue", linewidth=2, label="hypervolume so far", zorder=3)
    axes.set_xlabel("trial (completion order)")
    names = ", ".join(m.name for m in board.objectives)
    axes.set_ylabel(f"hypervolume ({names} scaled to [0, 1])")
    axes.set_title(f"{title}: hypervolume of the feasible trials so far")
    axes.grid(alpha=0.3)
    axes.legend(loc="best")
    return save(fig, path)


def _scaler(board: Leaderboard, rows: Sequence[TrialOutcome]) -> Callable[[TrialOutcome], tuple[float, ...]]:
    """Losses scaled to [0, 1] over ``rows`` (an objective that does not vary: 0)."""
    losses = [[m.loss(v) for m, v in zip(board.objectives, r.point, strict=True)] for r in rows]
    low = [min(column, default=0.0) for column in zip(*losses, strict=True)] or [0.0] * len(board.objectives)
    high = [max(column, default=0.0) for column in zip(*losses, strict=True)] or [0.0] * len(board.objectives)

    def scaled(row: TrialOutcome) -> tuple[float, ...]:
        return tuple(
            (m.loss(v) - lo) / (hi - lo) if hi > lo else 0.0
            for m, v, lo, hi in zip(board.objectives, row.point, low, high, strict=True)
        )

    return scaled


def objective_importance(version: StudyVersion, board: Leaderboard) -> dict[str, Importance | str]:
    """Each objective's parameter importance over the search's finished trials (``analysis.importance`` with that
    objective as the metric), or why there is none (one line)."""
    out: dict[str, Importance | str] = {}
    for k, objective in enumerate(board.objectives):
        rows = [replace(r, value=r.point[k]) for r in board.rows]
        try:
            out[objective.name] = parameter_importance(replace(version, metric=objective), rows)
        except ImportanceSkipped as e:
            out[objective.name] = str(e)
        except Exception as e:  # a plot is not worth a search: say why there is none
            out[objective.name] = f"failed: {failure_line(e)}"
    return out


def front_artifacts(
    version: StudyVersion,
    board: Leaderboard,
    folder: Path,
    figure: Figure,
    save: Save,
    plot_importance: Callable[[Importance, Path, str], Path],
) -> tuple[dict[str, Path], dict[str, str]]:
    """The files of a search of several objectives (artifact -> local file) and the reasons for those missing
    (``schema.IMPORTANCE_SKIPPED``: ``objective: reason`` for each objective without importance)."""
    files: dict[str, Path] = {}
    for x, y in itertools.combinations(range(len(board.objectives)), 2):
        artifact = schema.pareto_artifact(board.objectives[x].name, board.objectives[y].name)
        files[artifact] = plot_front(
            board, x, y, folder / schema.review_file_name(artifact), version.label, figure, save
        )
    if board.rows:
        path = folder / schema.review_file_name(schema.BEST_SO_FAR_ARTIFACT)
        files[schema.BEST_SO_FAR_ARTIFACT] = plot_hypervolume_so_far(board, path, version.label, figure, save)
    skipped = []
    for name, importance in objective_importance(version, board).items():
        if isinstance(importance, str):
            skipped.append(f"{name}: {importance}")
            continue
        values = schema.importance_artifact(name, ".json")
        files[values] = folder / schema.review_file_name(values)
        files[values].write_text(json.dumps(importance.as_dict(), indent=1), encoding="utf-8")
        picture = schema.importance_artifact(name)
        drawn = plot_importance(importance, folder, version.label)
        files[picture] = drawn.rename(folder / schema.review_file_name(picture))
    tags = {schema.IMPORTANCE_SKIPPED: "; ".join(skipped)} if skipped else {}
    return files, tags
