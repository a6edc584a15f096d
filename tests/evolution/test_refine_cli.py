"""space refine from a tracking store: ASHA histories read back, a new file beside the old, never an overwrite."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.spaces import load_study, load_version
from orchestrator.tracking.mlflow_store import MlflowStore
from tests.evolution.records import record_search
from tests.spacefiles import write_space
from tests.spaces.scored import asha_trials


def v1_file(root: Path, study: str) -> Path:
    """Version 1 of ``study``: ASHA over 9 epochs, x in [0, 1]."""
    schedule = "{scheduler: asha, max_epochs: 9, grace_period: 1}"
    return write_space(root, study=study, params="  x: {uniform: [0.0, 1.0]}\n", schedule=schedule)


def refine_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as done:
        main(["space", "refine", *args])
    out, err = capsys.readouterr()
    return int(done.value.code or 0), out, err


def test_refine_ranks_asha_trials_on_their_history_and_writes_the_next_version(
    tmp_path: Path, store: MlflowStore, capsys: pytest.CaptureFixture[str]
) -> None:
    v1 = v1_file(tmp_path, "asha")
    folder = v1.parent
    record_search(store, load_version(v1), [(t.config, dict(t.history)) for t in asha_trials()])

    code, out, _ = refine_cli(capsys, str(folder), "--tracking-uri", store.uri, "--dry-run")
    assert code == 0 and "+parent: 1" in out and "ranked on epoch 9" in out
    assert "evidence per parameter (a Gaussian process of 24 trials" in out  # the dry run shows the evidence
    assert "\n  x: importance 1.00; predicted loss lowest near 0." in out  # a survivor's x, 0.15..0.25
    assert "holds a loss better than the best seen" in out
    assert sorted(p.name for p in folder.iterdir()) == ["v1.yaml"]

    code, out, err = refine_cli(capsys, str(v1), "--tracking-uri", store.uri)
    assert code == 0, err
    v2 = load_version(folder / "v2.yaml")
    assert v2.parent == 1 and v2.params.params["x"].contains(0.2) and v2.params.params["x"].high < 0.5
    assert "6 ranked on epoch 9" in v2.notes and v2.notes in out

    # v2 exists: refining v1 again proposes v2's space again, which is refused (naming v2); nothing is written and
    # the note says that v1 is not the newest version.
    text = (folder / "v2.yaml").read_text()
    code, out, err = refine_cli(capsys, str(v1), "--tracking-uri", store.uri)
    assert code == 1 and "is v2 again" in err and "v2 exist" in out
    assert (folder / "v2.yaml").read_text() == text and sorted(load_study(folder).versions) == [1, 2]


def test_too_few_finished_trials_write_no_file(
    tmp_path: Path, store: MlflowStore, capsys: pytest.CaptureFixture[str]
) -> None:
    v1 = v1_file(tmp_path, "few")
    folder = v1.parent
    record_search(store, load_version(v1), [({"x": 0.1 * i}, {1: float(i)}) for i in range(3)])
    code, _, err = refine_cli(capsys, str(folder), "--tracking-uri", store.uri)
    assert code == 1 and "3 finished trial(s) with a finite loss fit this version" in err and "--min-trials" in err
    assert sorted(p.name for p in folder.iterdir()) == ["v1.yaml"]
    # --min-trials 3 lets refine model the 3 trials; they are too few to justify a change: still no file.
    code, _, err = refine_cli(capsys, str(folder), "--tracking-uri", store.uri, "--min-trials", "3")
    assert code == 1 and "the model of 3 trials gives no reason to change the space; x: importance" in err
    assert sorted(p.name for p in folder.iterdir()) == ["v1.yaml"]


def test_a_dry_run_shows_the_evidence_for_every_parameter_even_unchanged_ones(
    tmp_path: Path, store: MlflowStore, capsys: pytest.CaptureFixture[str]
) -> None:
    v1 = write_space(
        tmp_path,
        study="two",
        schedule="{scheduler: fifo, max_epochs: 9, grace_period: 1}",
        params="  x: {uniform: [0.0, 1.0]}\n  z: {uniform: [0.0, 10.0]}\n",
    )
    folder = v1.parent
    trials = [({"x": (i % 8) / 7, "z": (3 * i % 11) / 1.1}, {9: abs((i % 8) / 7 - 0.3)}) for i in range(24)]
    record_search(store, load_version(v1), trials)
    code, out, err = refine_cli(capsys, str(folder), "--tracking-uri", store.uri, "--dry-run")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[lines.index(next(ln for ln in lines if ln.startswith("evidence per parameter"))) + 1].startswith(
        "  x: "
    )
    z = next(ln for ln in lines if ln.startswith("  z: "))
    assert "barely matters, left as is -> kept [0, 10]" in z  # unchanged, and its evidence shown
