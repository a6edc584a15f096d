"""``orchestrator report STUDY``: the leaderboard across a study's versions, for reviewers.

Per version: trials (finished and failed), the best value (a trial's best epoch, as the search
logged it) and its configuration, how many
earlier trials its latest search carried and dropped, and what changed from its parent.
The versions come from the study folder when there is one (for the changes), and from the
tracking store otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from orchestrator.spaces import Metric, StudyVersion
from orchestrator.spaces.diff import diff

if TYPE_CHECKING:
    from orchestrator.tracking.mlflow_store import MlflowStore, TrialRow


@dataclass(frozen=True)
class SearchInfo:
    """What a search run recorded about its start: the version and its carry-over report."""

    version: int | None
    start_time: int
    carry: Mapping[str, Any]
    metric: Metric | None = None


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


@dataclass(frozen=True)
class StudyReport:
    study: str
    metric: Metric | None
    versions: list[VersionRow]

    @property
    def best(self) -> VersionRow | None:
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
    numbers = sorted({*versions, *(r.version for r in rows if r.version is not None)})
    out = []
    for n in numbers:
        mine = [r for r in rows if r.version == n]
        finished = [r for r in mine if r.status == "FINISHED"]
        best_row, best = _best(finished, metric)
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
            )
        )
    return StudyReport(study, metric, out)


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

    tags, params = run.data.tags, run.data.params
    version = tags.get(VERSION, "")
    try:
        carry = json.loads(tags.get(CARRY, "{}"))
    except json.JSONDecodeError:
        carry = {}
    named = PARAM_METRIC in params and PARAM_MODE in params
    metric = Metric(params[PARAM_METRIC], params[PARAM_MODE]) if named else None
    return SearchInfo(int(version) if version.isdigit() else None, run.info.start_time or 0, carry, metric)


# --------------------------------------------------------------------------- rendering

COLUMNS = ("version", "hash", "trials", "finished", "failed", "best", "carried", "dropped", "changes from parent")


def render_report(report: StudyReport, fmt: str = "table") -> str:
    """``table`` (aligned columns), ``markdown`` (for pull requests) or ``json``."""
    if fmt == "json":
        return json.dumps(
            {
                "study": report.study,
                "metric": asdict(report.metric) if report.metric else None,
                "best_version": report.best.version if report.best else None,
                "versions": [asdict(v) for v in report.versions],
            },
            indent=2,
            default=str,
        )
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
