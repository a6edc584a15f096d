"""Scored trials shared by the refine tests (tests/spaces/test_refine.py, tests/evolution/test_refine_cli.py)."""

from __future__ import annotations

from orchestrator.spaces.trials import RecordedTrial


def asha_trials() -> list[RecordedTrial]:
    """An ASHA search on a validation loss that rises with training (overfitting): its early-stopped
    trials (x far from 0.2, stopped at epoch 1) have *lower* last values than the survivors (x near 0.2,
    trained to epoch 9), so comparing every trial on its last value would put the worst ones on top."""
    trials = []
    for i in range(24):
        survivor = i % 4 == 0
        x = 0.15 + 0.1 * (i / 24) if survivor else 0.5 + 0.5 * (i / 24)
        epochs = 9 if survivor else 1
        history = {e: abs(x - 0.2) + 0.1 * e for e in range(1, epochs + 1)}
        trials.append(RecordedTrial({"x": x}, history[epochs], history, run_id=f"run{i:02d}"))
    return trials
