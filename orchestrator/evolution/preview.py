"""The carry report of a new version before anything runs: what ``space diff --tracking-uri`` prints.

It is the warm start's own function, ``tracking.carried.carried_trials`` (``spaces.carry.carry``
over the rows of ``tracking.ledger.trials_with_ledger``), so the counts are the ones the next
``orchestrator run`` of that version prints and logs (given no trial ends in between).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.spaces import StudyVersion
from orchestrator.spaces.carry import CarryReport
from orchestrator.tracking.carried import carried_trials
from trainables.costs import computable

if TYPE_CHECKING:
    from orchestrator.tracking.mlflow_store import MlflowStore


def carry_preview(store: MlflowStore, version: StudyVersion, ledger: Path | None = None) -> tuple[CarryReport, str]:
    """How every trial of the study would carry into ``version``, and where the trials were read from."""
    report, _, source = carried_trials(store, version, ledger, computable=computable(version.trainable))
    return report, source


def render_carry(report: CarryReport, version: StudyVersion, source: str, fmt: str = "text") -> str:
    """``text`` (the lines ``run`` prints), ``markdown`` (a table for pull requests) or ``json``."""
    if fmt == "json":
        return json.dumps({"version": version.version, "source": source, **report.as_dict()}, indent=2)
    if fmt == "markdown":
        lines = [
            f"#### Earlier trials of {version.study} in v{version.version} (from {source})",
            "",
            "| trials | count |",
            "|---|---|",
            f"| usable in v{version.version} | {len(report.carried)} of {report.total} |",
        ]
        lines += [f"| given the default of `{path}` | {n} |" for path, n in sorted(report.defaulted.items())]
        lines += [f"| ignoring removed `{path}` | {n} |" for path, n in sorted(report.removed.items())]
        lines += [f"| dropped: {reason} | {n} |" for reason, n in report.dropped.most_common()]
        return "\n".join(lines)
    return f"carry into v{version.version} from {source}: {report.summary()}"
