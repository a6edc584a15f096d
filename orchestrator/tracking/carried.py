"""The warm start's read: every earlier trial of a study, carried into a version (``spaces.carry``).

One function for ``run`` (what the searcher learns from before its first suggestion) and ``space diff
--tracking-uri`` (what the next run would carry), so both count alike.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from pathlib import Path

from orchestrator.spaces import StudyVersion
from orchestrator.spaces.carry import CarryReport, carry

from . import ledger
from .mlflow_store import MlflowStore


def carried_trials(
    store: MlflowStore,
    version: StudyVersion,
    ledger_path: Path | None,
    leave_out: Collection[str] = (),
    computable: Collection[str] = (),
) -> tuple[CarryReport, float, str]:
    """Earlier trials of the study that fit ``version``, the seconds it took, and where they were read from
    (``ledger.trials_with_ledger``: a ledger file, the newest ledger artifact plus newer runs, or the runs).
    The runs in ``leave_out`` are no earlier trials (a resumed run's own interrupted trials, which continue).
    ``computable`` names the hardware costs a carried trial may lack (``trainables.costs.computable``: computed from
    its configuration before the search), so a preview counts what the run will carry."""
    start = time.perf_counter()
    rows, source = ledger.trials_with_ledger(store, version.study, ledger_path)
    priors = (r.prior(version.metric.name, version.reported) for r in rows if r.run_id not in leave_out)
    report = carry(priors, version, computable)
    return report, time.perf_counter() - start, source
