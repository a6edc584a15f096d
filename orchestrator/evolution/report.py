"""``orchestrator report STUDY``: the leaderboard across a study's versions, for reviewers.

Per version: trials (finished and failed), the best value (a trial's best epoch, as the search
logged it) and its configuration, how many
earlier trials its latest search carried and dropped, and what changed from its parent.
The versions come from the study folder when there is one (for the changes), and from the
tracking store otherwise.

A study of several objectives (the newest version's ``objectives:``, else its newest search's params) is read
by front (``engine.leaderboard``: finished trials of every version on their final values, feasible first):
per version its knee and how many of its trials are on the study's Pareto front, then the front itself, the
study's knee marked (the trial ``orchestrator train`` trains by default).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from orchestrator.spaces import Metric, StudyVersion
from orchestrator.spaces.diff import diff
from orchestrator.spaces.version import Constraint

if TYPE_CHECKING:
    from orchestrator.tracking.mlflow_store import MlflowStore, TrialRow


@dataclass(frozen=True)
class SearchInfo:
    """What a search run recorded about its start: the version and its carry-over report."""

    version: int | None
    start_time: int
    carry: Mapping[str, Any]
    metric: Metric | None = None
    # several objectives (the search's ``objectives`` param) and its constraints
    objectives: tuple[Metric, ...] = ()
    constraints: tuple[Constraint, ...] = ()


@dataclass(frozen=True)
class VersionRow:
    version: int
    hash: str
    trials: int
    finished: int
    failed: int
    best: float | None
    best_config: dict[str, Any] = field(default_factory=dict)
    searches: int = 0
    carried: int | None = None
    dropped: int | None = None
    dropped_by_reason: dict[str, int] = field(default_factory=dict)
    changes: list[str] = field(default_factory=list)
    # several objectives: the knee of the version's own trials (every objective's value), and how many of its
    # trials are on the study's Pareto front
    best_values: dict[str, float] = field(default_factory=dict)
    on_front: int | None = None


@dataclass(frozen=True)
class FrontMember:
    """A trial on the study's Pareto front (several objectives)."""

    version: int | None
    trial_id: str
    run_id: str
    values: dict[str, float]
    config: dict[str, Any]
    knee: bool = False


@dataclass(frozen=True)
class StudyReport:
    study: str
    metric: Metric | None
    versions: list[VersionRow]
    objectives: tuple[Metric, ...] = ()  # several objectives (``metric`` is the first)
    constraints: tuple[Constraint, ...] = ()
    front: list[FrontMember] = field(default_factory=list)  # the study's Pareto front, by crowding

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    @property
    def best(self) -> VersionRow | None:
        if self.multi_objective:  # the version of the study's knee
            knee = next((m for m in self.front if m.knee), None)
            return next((v for v in self.versions if knee is not None and v.version == knee.version), None)
        metric = self.metric
        scored = [(metric.loss(v.best), v.version, v) for v in self.versions if metric and v.best is not None]
        return min(scored, key=lambda s: s[:2])[2] if scored else None


def build_report(
    study: str,
    rows: Sequence[TrialRow],
    searches: Sequence[SearchInfo],
    versions: Mapping[int, StudyVersion] | None = None,
) -> StudyReport:
    """The report from trial rows, search runs and (when known) the version files."""
    versions = versions or {}
    metric = versions[max(versions)].metric if versions else next((s.metric for s in searches if s.metric), None)
    objectives, constraints = _goals(versions, searches)
    several = len(objectives) > 1
    front = _front(rows, objectives, constraints) if several else []
    numbers = sorted({*versions, *(r.version for r in rows if r.version is not None)})
    out = []
    for n in numbers:
        mine = [r for r in rows if r.version == n]
        finished = [r for r in mine if r.status == "FINISHED"]
        best_row, best = _best(finished, metric)
        best_values: dict[str, float] = {}
        if several:
            knee = _front(finished, objectives, constraints)
            chosen = next((m for m in knee if m.knee), None)
            best_row = next((r for r in finished if chosen is not None and r.run_id == chosen.run_id), None)
            best_values = chosen.values if chosen is not None else {}
            best = chosen.values[objectives[0].name] if chosen is not None else None
        started = sorted((s for s in searches if s.version == n), key=lambda s: s.start_time)
        latest = started[-1].carry if started else {}
        version = versions.get(n)
        parent = versions.get(version.parent) if version and version.parent is not None else None
        out.append(
            VersionRow(
                version=n,
                hash=version.short_hash if version else next((r.space_hash[:12] for r in mine if r.space_hash), ""),
                trials=len(mine),
                finished=len(finished),
                failed=sum(1 for r in mine if r.status == "FAILED"),
                best=best,
                best_config=dict(best_row.config) if best_row else {},
                searches=len(started),
                carried=latest.get("carried"),
                dropped=latest.get("dropped"),
                dropped_by_reason=dict(latest.get("dropped_by_reason", {})),
                changes=[f"{c.kind} {c.path}" for c in diff(parent, version)] if parent and version else [],
                best_values=best_values,
                on_front=sum(1 for m in front if m.version == n) if several else None,
            )
        )
    if several:
        return StudyReport(study, objectives[0], out, objectives, constraints, front)
    return StudyReport(study, metric, out)


def _goals(
    versions: Mapping[int, StudyVersion], searches: Sequence[SearchInfo]
) -> tuple[tuple[Metric, ...], tuple[Constraint, ...]]:
    """The study's objectives and constraints: the newest version's, else the newest search's that names them."""
    if versions:
        newest = versions[max(versions)]
        return newest.goals, newest.constraints
    for search in sorted(searches, key=lambda s: s.start_time, reverse=True):
        if search.objectives:
            return search.objectives, search.constraints
    return (), ()


def _front(
    rows: Sequence[TrialRow], objectives: Sequence[Metric], constraints: Sequence[Constraint]
) -> list[FrontMember]:
    """The feasible Pareto front of the FINISHED ``rows`` (``engine.leaderboard``'s rule), the knee marked."""
    from orchestrator.engine.leaderboard import Leaderboard, outcomes_from_rows

    finished = [r for r in rows if r.status == "FINISHED"]
    board = Leaderboard.by_front(objectives, constraints, outcomes_from_rows(finished, objectives, constraints))
    version = {r.run_id: r.version for r in finished}
    best = board.best
    return [
        FrontMember(
            version.get(m.run_id),
            m.trial_id,
            m.run_id,
            {o.name: v for o, v in zip(objectives, m.point, strict=True)},
            dict(m.config),
            m is best,
        )
        for m in board.front()
    ]


def _best(rows: Sequence[TrialRow], metric: Metric | None) -> tuple[TrialRow | None, float | None]:
    if metric is None:
        return None, None
    scored = [(r, v) for r in rows if (v := r.score(metric.name)) is not None]
    if not scored:
        return None, None
    return min(scored, key=lambda pair: (metric.loss(pair[1]), pair[0].run_id))


def study_report(store: MlflowStore, study: str, versions: Mapping[int, StudyVersion] | None = None) -> StudyReport:
    """Read the study's trials and searches from ``store`` and build the report."""
    return build_report(study, store.trials(study), [_search_info(run) for run in store.searches(study)], versions)


def _search_info(run: Any) -> SearchInfo:
    from orchestrator.tracking.schema import CARRY, PARAM_METRIC, PARAM_MODE, VERSION
    from orchestrator.tracking.study import goals_of

    tags, params = run.data.tags, run.data.params
    version = tags.get(VERSION, "")
    try:
        carry = json.loads(tags.get(CARRY, "{}"))
    except json.JSONDecodeError:
        carry = {}
    named = PARAM_METRIC in params and PARAM_MODE in params
    metric = Metric(params[PARAM_METRIC], params[PARAM_MODE]) if named else None
    goals = goals_of(params)
    objectives = goals.goals if goals is not None and goals.multi_objective else ()
    constraints = goals.constraints if goals is not None else ()
    number = int(version) if version.isdigit() else None
    return SearchInfo(number, run.info.start_time or 0, carry, metric, objectives, constraints)


# --------------------------------------------------------------------------- rendering

COLUMNS = ("version", "hash", "trials", "finished", "failed", "best", "carried", "dropped", "changes from parent")


FRONT_COLUMNS = ("version", "hash", "trials", "finished", "failed", "knee", "on front", "carried", "dropped")


def render_report(report: StudyReport, fmt: str = "table") -> str:
    """``table`` (aligned columns), ``markdown`` (for pull requests) or ``json``."""
    if fmt == "json":
        several = (
            {
                "objectives": [asdict(m) for m in report.objectives],
                "constraints": {c.name: c.spec() for c in report.constraints},
                "front": [asdict(m) for m in report.front],
            }
            if report.multi_objective
            else {}
        )
        return json.dumps(
            {
                "study": report.study,
                "metric": asdict(report.metric) if report.metric else None,
                "best_version": report.best.version if report.best else None,
                "versions": [asdict(v) for v in report.versions],
                **several,
            },
            indent=2,
            default=str,
        )
    if report.multi_objective:
        return _render_front(report, fmt)
    best = report.best
    metric = f"{report.metric.name} ({report.metric.mode})" if report.metric else "metric unknown"
    trials = sum(v.trials for v in report.versions)
    head = f"{report.study}: {len(report.versions)} version(s), {trials} trial(s), {metric}"
    head += f"; best {_fmt(best.best)} in v{best.version}" if best else "; no finished trial yet"
    cells = [_cells(v, v is best) for v in report.versions]
    if fmt == "markdown":
        lines = [f"### {head}", "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        lines += ["| " + " | ".join(row) + " |" for row in cells]
        if best is not None:
            lines += ["", f"Best configuration (v{best.version}): `{json.dumps(best.best_config, sort_keys=True)}`"]
        return "\n".join(lines)
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(COLUMNS)]
    lines = [head, "  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    if best is not None:
        lines.append(f"best configuration (v{best.version}): {json.dumps(best.best_config, sort_keys=True)}")
    return "\n".join(lines)


def _cells(v: VersionRow, is_best: bool) -> list[str]:
    dropped = "-" if v.dropped is None else str(v.dropped)
    if v.dropped_by_reason:
        dropped += " (" + ", ".join(f"{reason}: {n}" for reason, n in sorted(v.dropped_by_reason.items())) + ")"
    return [
        f"v{v.version}",
        v.hash,
        str(v.trials),
        str(v.finished),
        str(v.failed),
        _fmt(v.best) + (" *" if is_best else ""),
        "-" if v.carried is None else str(v.carried),
        dropped,
        "; ".join(v.changes) or "-",
    ]


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.5g}"


def _goals_text(report: StudyReport) -> str:
    text = ", ".join(f"{m.name} ({m.mode})" for m in report.objectives)
    if report.constraints:
        text += " under " + " and ".join(c.describe() for c in report.constraints)
    return text


def _values_text(values: Mapping[str, float]) -> str:
    return ", ".join(f"{name} {value:.5g}" for name, value in values.items()) or "-"


def _render_front(report: StudyReport, fmt: str) -> str:
    """A study of several objectives: the versions (each one's knee, its trials on the study's front), then the
    study's Pareto front with its knee marked."""
    trials = sum(v.trials for v in report.versions)
    head = f"{report.study}: {len(report.versions)} version(s), {trials} trial(s), {_goals_text(report)}"
    knee = next((m for m in report.front if m.knee), None)
    head += f"; the knee in v{knee.version}" if knee is not None else "; no finished feasible trial yet"
    cells = [
        [
            f"v{v.version}",
            v.hash,
            str(v.trials),
            str(v.finished),
            str(v.failed),
            _values_text(v.best_values),
            str(v.on_front or 0),
            "-" if v.carried is None else str(v.carried),
            "-" if v.dropped is None else str(v.dropped),
        ]
        for v in report.versions
    ]
    names = [m.name for m in report.objectives]
    front_head = (
        f"Pareto front of the study: {len(report.front)} trial(s) (finished, feasible, every version; by crowding, "
        "the most spread first); * the knee, what `orchestrator train` trains by default"
    )
    front_cells = [
        [("* " if m.knee else "") + m.trial_id, f"v{m.version}", *(f"{m.values[n]:.5g}" for n in names), m.run_id]
        for m in report.front
    ]
    front_columns = ("trial", "version", *names, "run")
    if fmt == "markdown":
        lines = [f"### {head}", "", "| " + " | ".join(FRONT_COLUMNS) + " |", "|" + "---|" * len(FRONT_COLUMNS)]
        lines += ["| " + " | ".join(row) + " |" for row in cells]
        lines += ["", front_head, "", "| " + " | ".join(front_columns) + " |", "|" + "---|" * len(front_columns)]
        lines += ["| " + " | ".join(row) + " |" for row in front_cells]
        if knee is not None:
            lines += ["", f"Knee configuration (v{knee.version}): `{json.dumps(knee.config, sort_keys=True)}`"]
        return "\n".join(lines)
    lines = [head, *_aligned(FRONT_COLUMNS, cells), "", front_head, *_aligned(front_columns, front_cells)]
    if knee is not None:
        lines.append(f"knee configuration (v{knee.version}): {json.dumps(knee.config, sort_keys=True)}")
    return "\n".join(lines)


def _aligned(columns: Sequence[str], cells: Sequence[Sequence[str]]) -> list[str]:
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return lines
