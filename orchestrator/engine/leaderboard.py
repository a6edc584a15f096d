"""The leaderboard of one search: one rule for its rows, printed, as Markdown and as a Parquet table.

One metric: a trial's value is its best epoch's value of the search's metric (what ``best_<metric>``
records); trials that never reported the metric have no row. Rows are ranked best first.

Several objectives (``objectives:``), or constraints (``constraints:``): a trial's point is every objective's
value at its last report (one epoch's values: what the searchers and the scheduler were told, and what the
trial's last checkpoint, the model a search registers, holds); a trial that broke a constraint, or failed, is
infeasible (``TrialOutcome.violation``). Rows are ordered by ``engine.pareto.order``: by front (feasible
trials first; front 0 is the Pareto set), then by crowding within a front (most spread first), infeasible
trials last; the best is the knee of the feasible front (``pareto.knee``), never an infeasible trial. With one
metric and constraints the order is the same rule in one dimension: feasible trials best first, then the
infeasible ones, the slighter breach first. ``front_aware(version)`` says which rule a version gets.

Configurations are the searched values only, and every rendering shows them through ``redact_config``: a value
under a secret-looking key never reaches the console or an artifact.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from orchestrator.redaction import redact_config
from orchestrator.spaces import Metric, StudyVersion
from orchestrator.spaces.version import Constraint, total_violation
from orchestrator.tracking.study import ranking

from . import pareto
from .results import trial_identity

if TYPE_CHECKING:
    from orchestrator.tracking.mlflow_store import TrialRow

CONSOLE_TOP = 5  # rows the console shows at the end of a search
CONSOLE_FRONT = 10  # members of the Pareto front the console shows (several objectives)
FAILED_TRIAL = "the trial failed"  # why a failed trial is infeasible (it is never a member of the front)

PARQUET_SCHEMA = pa.schema(
    [
        ("rank", pa.int64()),
        ("trial_id", pa.string()),
        ("run_id", pa.string()),
        ("value", pa.float64()),
        ("epoch", pa.int64()),
        ("status", pa.string()),
        ("config", pa.string()),  # the searched values as JSON (redacted): nested values keep their types
    ]
)
OBJECTIVE_COLUMN = "objective."  # ranked by front: a column per objective, ``objective.<name>``


@dataclass(frozen=True)
class TrialOutcome:
    """One trial of a search as the leaderboard ranks it.

    ``config`` holds the searched values as the trial ran them (not redacted: renderings redact);
    ``ended_ms`` orders trials by completion (the tracking store's end time when known).
    """

    trial_id: str
    value: float
    epoch: int | None
    status: str
    config: dict[str, Any]
    run_id: str = ""
    ended_ms: int | None = None
    # Several objectives: every objective's value (the version's ``goals`` order; ``value`` is the first). Empty
    # with one metric: the point is ``(value,)``.
    values: tuple[float, ...] = ()
    violation: float = 0.0  # how far it breaks the constraints (0: feasible; infinite: a value missing, or failed)
    broken: tuple[str, ...] = ()  # what it breaks, for people (``params <= 2e+06``, ``the trial failed``)

    @property
    def point(self) -> tuple[float, ...]:
        """Every objective's value (one metric: its value alone)."""
        return self.values or (self.value,)

    @property
    def feasible(self) -> bool:
        return self.violation <= 0


def best_value(values: Iterable[float], metric: Metric) -> float:
    """The best of ``values`` for ``metric`` (its mode)."""
    values = list(values)
    return max(values) if metric.mode == "max" else min(values)


def front_aware(version: StudyVersion) -> bool:
    """Whether ``version``'s trials are ranked by front (several objectives, or constraints) rather than by one
    metric's best epoch."""
    return version.multi_objective or bool(version.constraints)


def outcomes_from_grid(grid: Iterable[Any], version: StudyVersion) -> list[TrialOutcome]:
    """The trials of a Ray Tune ``ResultGrid`` that reported ``version``'s metric (every objective, when it has
    several), in the grid's order."""
    if front_aware(version):
        return _front_outcomes_from_grid(grid, version)
    name, out = version.metric.name, []
    for result in grid:
        df = result.metrics_dataframe
        if df is None or name not in df:
            continue
        values = [float(v) for v in df[name].dropna()]
        if not values:
            continue
        metrics = result.metrics or {}
        epoch = metrics.get("epoch", metrics.get("training_iteration"))
        stamp = metrics.get("timestamp")  # seconds of the last report (Ray Tune's)
        out.append(
            TrialOutcome(
                trial_id=trial_identity(str(metrics.get("trial_id", "?")), result.config or {}),
                value=best_value(values, version.metric),
                epoch=int(epoch) if epoch is not None else None,
                status="FAILED" if result.error else "FINISHED",
                config={k: result.config[k] for k in version.params.params if k in result.config},
                ended_ms=int(stamp * 1000) if isinstance(stamp, int | float) else None,
            )
        )
    return out


def _last_finite(df: Any, name: str) -> float | None:
    """The last finite value of the column ``name`` (None: never reported, or never finite)."""
    if name not in df:
        return None
    finite = [float(v) for v in df[name].dropna() if math.isfinite(float(v))]
    return finite[-1] if finite else None


def _front_outcomes_from_grid(grid: Iterable[Any], version: StudyVersion) -> list[TrialOutcome]:
    out = []
    for result in grid:
        df = result.metrics_dataframe
        if df is None:
            continue
        last = {name: _last_finite(df, name) for name in version.reported}
        metrics = result.metrics or {}
        if version.multi_objective:
            point = [last[m.name] for m in version.goals]
            if any(v is None for v in point):
                continue  # no point: a trial that never reported an objective (finite) is no member of any front
            value, values = point[0], tuple(float(v) for v in point if v is not None)
        else:  # one metric and constraints: the metric's best epoch, as without constraints
            column = [float(v) for v in df[version.metric.name].dropna()] if version.metric.name in df else []
            if not column:
                continue
            value, values = best_value(column, version.metric), ()
        epoch = metrics.get("epoch", metrics.get("training_iteration"))
        stamp = metrics.get("timestamp")
        out.append(
            _judged(
                TrialOutcome(
                    trial_id=trial_identity(str(metrics.get("trial_id", "?")), result.config or {}),
                    value=float(value),
                    epoch=int(epoch) if epoch is not None else None,
                    status="FAILED" if result.error else "FINISHED",
                    config={k: result.config[k] for k in version.params.params if k in result.config},
                    ended_ms=int(stamp * 1000) if isinstance(stamp, int | float) else None,
                    values=values,
                ),
                version.constraints,
                last,
            )
        )
    return out


def outcomes_from_rows(
    rows: Iterable[TrialRow], goals: Sequence[Metric], constraints: Sequence[Constraint] = ()
) -> list[TrialOutcome]:
    """The trials of the tracking store's ``rows`` as the leaderboard ranks them by the objectives ``goals`` (one
    metric: ``TrialRow.score``, its best epoch; several: each objective's last logged value, what the run's metrics
    hold) under ``constraints``: trials that ended under an earlier driver of a search, a study's trials for
    ``report`` and ``train``. A trial without a (finite) value of every objective has none."""
    several = len(goals) > 1
    reported = [*(m.name for m in goals), *(c.name for c in constraints)]
    out = []
    for row in rows:
        if several:
            point = [row.metrics.get(m.name) for m in goals]
            if any(v is None or not math.isfinite(v) for v in point):
                continue
            value, values = float(point[0]), tuple(float(v) for v in point if v is not None)
        else:
            score = row.score(goals[0].name)
            if score is None:
                continue
            value, values = score, ()
        outcome = TrialOutcome(
            trial_id=row.trial_id,
            value=value,
            epoch=_epoch(row),
            status=row.status,
            config=dict(row.config),
            run_id=row.run_id,
            ended_ms=row.end_time,
            values=values,
        )
        out.append(_judged(outcome, constraints, {name: row.metrics.get(name) for name in reported}))
    return out


def _epoch(row: TrialRow) -> int | None:
    epoch = row.metrics.get("epoch")
    return int(epoch) if epoch is not None and math.isfinite(epoch) else None


def _judged(outcome: TrialOutcome, constraints: Sequence[Constraint], last: Mapping[str, float | None]) -> TrialOutcome:
    """``outcome`` with how far it breaks ``constraints`` (by the last values ``last``); a failed trial is
    infeasible however it scored."""
    broken = [c.describe() for c in constraints if c.violation(last.get(c.name)) > 0]
    violation = total_violation(constraints, last)  # the searchers' and the scheduler's total (StudyVersion.violation)
    if outcome.status == "FAILED":
        broken.append(FAILED_TRIAL)
        violation = math.inf
    return replace(outcome, violation=violation, broken=tuple(broken))


@dataclass(frozen=True)
class Leaderboard:
    """Ranked trials of one search, best first.

    With several objectives or constraints (``front_aware``): ``objectives`` and ``constraints`` are the
    version's, ``fronts`` holds each row's front (aligned with ``rows``; infeasible fronts after the feasible
    ones), and ``knee`` the index of the best row (None: no feasible trial)."""

    metric: Metric
    rows: tuple[TrialOutcome, ...]
    objectives: tuple[Metric, ...] = ()
    constraints: tuple[Constraint, ...] = ()
    fronts: tuple[int, ...] = ()
    knee: int | None = None
    run_link: Callable[[str], str] | None = field(default=None, compare=False)  # run id -> its page in the UI

    @classmethod
    def rank(cls, metric: Metric, outcomes: Iterable[TrialOutcome]) -> Leaderboard:
        """The leaderboard of ``outcomes`` by ``tracking.study.ranking`` (equal values: the first to end first)."""
        finite = [o for o in outcomes if math.isfinite(o.value)]
        return cls(metric, tuple(sorted(finite, key=lambda o: ranking(metric, o.value, o.ended_ms))))

    @classmethod
    def by_front(
        cls, objectives: Sequence[Metric], constraints: Sequence[Constraint], outcomes: Iterable[TrialOutcome]
    ) -> Leaderboard:
        """The leaderboard of ``outcomes`` by front then crowding (``pareto.order``), infeasible trials last; the
        best is the knee of the feasible front (``pareto.knee``). Outcomes without a finite point have no row."""
        objectives = tuple(objectives)
        kept = [o for o in outcomes if len(o.point) == len(objectives) and all(math.isfinite(v) for v in o.point)]
        points = [tuple(m.loss(v) for m, v in zip(objectives, o.point, strict=True)) for o in kept]
        violations = [o.violation for o in kept]
        order = pareto.order(points, violations)
        front_of = pareto.ranks(points, violations)
        rows = tuple(kept[i] for i in order)
        fronts = tuple(front_of[i] for i in order)
        best = [k for k, (row, front) in enumerate(zip(rows, fronts, strict=True)) if front == 0 and row.feasible]
        # equally balanced members (the two ends of a concave front): the better first objective, then the trial id,
        # so the knee does not depend on the order the trials came in (Ray Tune's, the store's)
        best.sort(key=lambda k: (points[order[k]], rows[k].trial_id))
        knee = pareto.knee([points[order[k]] for k in best])
        return cls(objectives[0], rows, objectives, tuple(constraints), fronts, None if knee is None else best[knee])

    @classmethod
    def of(cls, version: StudyVersion, outcomes: Iterable[TrialOutcome]) -> Leaderboard:
        """``outcomes`` ranked by ``version``'s rule: by front (``front_aware``), else by its metric."""
        if front_aware(version):
            return cls.by_front(version.goals, version.constraints, outcomes)
        return cls.rank(version.metric, outcomes)

    @classmethod
    def from_grid(cls, grid: Iterable[Any], version: StudyVersion) -> Leaderboard:
        return cls.of(version, outcomes_from_grid(grid, version))

    @classmethod
    def of_search(cls, grid: Iterable[Any], version: StudyVersion, earlier: Iterable[TrialRow] = ()) -> Leaderboard:
        """The leaderboard a search ends with: this driver's trials (Ray Tune's ``grid``) and, ranked by front, those
        that ended under an earlier driver (``earlier``: a front is the whole search's). By one metric, this
        driver's trials only (the best of the earlier ones enters the search's best through its score)."""
        outcomes = outcomes_from_grid(grid, version)
        if front_aware(version):
            seen = {o.trial_id for o in outcomes}
            before = outcomes_from_rows(earlier, version.goals, version.constraints)
            outcomes += [o for o in before if o.trial_id not in seen]
        return cls.of(version, outcomes)

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    @property
    def best(self) -> TrialOutcome | None:
        """The first row; by front, the knee of the feasible front (None when no trial is feasible)."""
        if self.fronts:
            return None if self.knee is None else self.rows[self.knee]
        return self.rows[0] if self.rows else None

    def front(self) -> list[TrialOutcome]:
        """The feasible members of front 0, the Pareto set (by one metric: the best row)."""
        if not self.fronts:
            return list(self.rows[:1])
        return [r for r, f in zip(self.rows, self.fronts, strict=True) if f == 0 and r.feasible]

    def front_of(self, trial_id: str) -> int | None:
        """The front of the trial ``trial_id`` (None: not ranked by front, or no row)."""
        return next((f for r, f in zip(self.rows, self.fronts, strict=False) if r.trial_id == trial_id), None)

    def with_runs(self, runs: Iterable[TrialRow]) -> Leaderboard:
        """The same rows with each trial's MLflow run id and end time, from the store's rows (by trial id)."""
        by_trial: Mapping[str, TrialRow] = {r.trial_id: r for r in runs if r.trial_id}
        rows = []
        for row in self.rows:
            run = by_trial.get(row.trial_id)
            if run is not None:
                row = replace(row, run_id=run.run_id, ended_ms=run.end_time or row.ended_ms)
            rows.append(row)
        if self.fronts:  # by front, equal rows keep their order: the same board with the runs
            return replace(self, rows=tuple(rows))
        # the store's end times may order equal values anew
        return replace(Leaderboard.rank(self.metric, rows), run_link=self.run_link)

    def linked(self, run_link: Callable[[str], str] | None) -> Leaderboard:
        """The same board whose Markdown links each run to ``run_link(run_id)`` (its page in the MLflow UI)."""
        return replace(self, run_link=run_link)

    def completion_order(self) -> list[TrialOutcome]:
        """The rows in the order the trials ended (unknown end times last, in rank order)."""
        indexed = list(enumerate(self.rows))
        indexed.sort(key=lambda item: (item[1].ended_ms is None, item[1].ended_ms or 0, item[0]))
        return [row for _, row in indexed]

    def goals_text(self) -> str:
        """``loss (min), params (min)``, and the constraints."""
        text = ", ".join(f"{m.name} ({m.mode})" for m in self.objectives or (self.metric,))
        if self.constraints:
            text += " under " + " and ".join(c.describe() for c in self.constraints)
        return text

    def point_text(self, row: TrialOutcome) -> str:
        """``loss 0.1, params 1.2e+05``: every objective's value of ``row``."""
        names = [m.name for m in self.objectives or (self.metric,)]
        return ", ".join(f"{name} {value:.5g}" for name, value in zip(names, row.point, strict=True))

    def text(self, top: int = CONSOLE_TOP) -> str:
        """What the console prints when a search ends: the ``top`` rows; several objectives: the Pareto front
        (at most ``CONSOLE_FRONT`` members), the knee marked ``*``."""
        if not self.fronts:
            lines = [f"top {min(top, len(self.rows))} by {self.metric.name}:"]
            lines += [f"  {r.value:.5g}  {r.trial_id}  {_config_json(r.config)}" for r in self.rows[:top]]
            return "\n".join(lines)
        best = self.best
        if not self.multi_objective:
            shown = list(self.rows[:top])
            head = f"top {len(shown)} by {self.goals_text()} (infeasible trials last):"
        else:
            front = self.front()
            shown = front[:CONSOLE_FRONT]
            head = f"Pareto front: {len(front)} of {len(self.rows)} trials by {self.goals_text()}; * the knee (best):"
            if not front:
                head = f"no trial meets the constraints ({self.goals_text()}); nearest first:"
                shown = list(self.rows[:top])
        lines = [head]
        for r in shown:
            mark = "*" if r is best else " "
            infeasible = "" if r.feasible else f"  infeasible: {', '.join(r.broken)}"
            lines.append(f" {mark} {self.point_text(r)}  {r.trial_id}  {_config_json(r.config)}{infeasible}")
        if self.multi_objective and len(self.front()) > len(shown):
            lines.append(f"  ... {len(self.front()) - len(shown)} more on the front (review/leaderboard.md)")
        return "\n".join(lines)

    def markdown(self, title: str) -> str:
        """Every row as a Markdown table under the heading ``title``."""
        if self.fronts:
            return self._front_markdown(title)
        lines = [
            f"# {title}",
            "",
            f"{len(self.rows)} trials by {self.metric.name} ({self.metric.mode}), best first.",
            "",
            f"| rank | trial | run | {self.metric.name} | epoch | status | config |",
            "|---:|---|---|---:|---:|---|---|",
        ]
        for rank, r in enumerate(self.rows, start=1):
            epoch = "" if r.epoch is None else str(r.epoch)
            config = _config_json(r.config).replace("|", "\\|")
            lines.append(
                f"| {rank} | `{r.trial_id}` | `{r.run_id}` | {r.value:.6g} | {epoch} | {r.status} | `{config}` |"
            )
        return "\n".join(lines) + "\n"

    def _front_markdown(self, title: str) -> str:
        names = [m.name for m in self.objectives]
        best = self.best
        knee = (
            f"The best trial is the knee of the front (`{best.trial_id}`, marked *: the balanced trade-off, closest "
            "to the ideal point once each objective is scaled over the front)."
            if best is not None and self.multi_objective
            else f"The best trial is `{best.trial_id}` (marked *)."
            if best is not None
            else "No trial meets the constraints: there is no best trial."
        )
        lines = [
            f"# {title}",
            "",
            f"{len(self.rows)} trials by {self.goals_text()}: by front (front 0 is the Pareto set: no trial is "
            "better in one objective without being worse in another), then by crowding within a front (the most "
            f"spread first); infeasible trials last. {knee}",
            "",
            "| rank | front | trial | run | " + " | ".join(names) + " | feasible | epoch | status | config |",
            "|---:|---:|---|---|" + "---:|" * len(names) + "---|---:|---|---|",
        ]
        for rank, (r, front) in enumerate(zip(self.rows, self.fronts, strict=True), start=1):
            epoch = "" if r.epoch is None else str(r.epoch)
            config = _config_json(r.config).replace("|", "\\|")
            values = " | ".join(f"{v:.6g}" for v in r.point)
            feasible = "yes" if r.feasible else "no: " + ", ".join(r.broken)
            trial = f"`{r.trial_id}`" + (" *" if r is best else "")
            lines.append(
                f"| {rank} | {front} | {trial} | {self._run_cell(r.run_id)} | {values} | {feasible} | {epoch} | "
                f"{r.status} | `{config}` |"
            )
        return "\n".join(lines) + "\n"

    def _run_cell(self, run_id: str) -> str:
        if not run_id:
            return ""
        return f"[`{run_id}`]({self.run_link(run_id)})" if self.run_link is not None else f"`{run_id}`"

    def table(self) -> pa.Table:
        """Every row as an Arrow table (``PARQUET_SCHEMA``; ranked by front: with ``front``, ``feasible`` and one
        ``objective.<name>`` column per objective after it)."""
        columns: dict[str, list[Any]] = {
            "rank": list(range(1, len(self.rows) + 1)),
            "trial_id": [r.trial_id for r in self.rows],
            "run_id": [r.run_id for r in self.rows],
            "value": [r.value for r in self.rows],
            "epoch": [r.epoch for r in self.rows],
            "status": [r.status for r in self.rows],
            "config": [_config_json(r.config) for r in self.rows],
        }
        if not self.fronts:
            return pa.table(columns, schema=PARQUET_SCHEMA)
        fields = [*PARQUET_SCHEMA, pa.field("front", pa.int64()), pa.field("feasible", pa.bool_())]
        columns["front"] = list(self.fronts)
        columns["feasible"] = [r.feasible for r in self.rows]
        for k, m in enumerate(self.objectives):
            fields.append(pa.field(f"{OBJECTIVE_COLUMN}{m.name}", pa.float64()))
            columns[f"{OBJECTIVE_COLUMN}{m.name}"] = [r.point[k] for r in self.rows]
        return pa.table(columns, schema=pa.schema(fields))


def _config_json(config: Mapping[str, Any]) -> str:
    return json.dumps(redact_config(config), sort_keys=True, default=str)
