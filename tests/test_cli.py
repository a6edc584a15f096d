"""The command line as a user meets it: exit codes, messages, help on bad usage, fast imports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.probes import HEAVY
from tests.runs import log_scored_trials
from tests.spacefiles import MINIMAL, ROOT, write_space


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_validate_shipped_spaces_exits_zero() -> None:
    r = run("space", "validate")
    assert r.returncode == 0, r.stderr
    assert "ok  unet_dstl v1" in r.stdout and "ok  convnet_digits v1" in r.stdout


def test_validate_reports_every_problem_and_exits_one(tmp_path: Path) -> None:
    bad = write_space(tmp_path, MINIMAL.replace("x: {uniform: [-1.0, 1.0]}", "lr: {loguniform: [0, 1]}"))
    typo = write_space(tmp_path, MINIMAL + "schedul: {max_epochs: 2}\n", study="other")
    typo.write_text(typo.read_text().replace("study: demo", "study: other"))
    r = run("space", "validate", str(bad), str(typo))
    assert r.returncode == 1
    assert f"{bad}:6: params.lr.loguniform" in r.stderr
    assert "did you mean 'schedule'" in r.stderr and str(typo) in r.stderr
    assert "2 problem(s) in 2 of 2 file(s)" in r.stderr
    assert "Traceback" not in r.stderr


def test_validate_folder_with_lineage_problem(tmp_path: Path) -> None:
    write_space(tmp_path, MINIMAL)
    v2 = write_space(tmp_path, MINIMAL.replace("version: 1", "version: 2\nparent: 5"), name="v2.yaml")
    r = run("space", "validate", str(v2.parent))
    assert r.returncode == 1 and "earlier version than 2" in r.stderr


def test_show_prints_hash_and_lineage() -> None:
    r = run("space", "show", "search_spaces/unet_dstl/v2.yaml")
    assert r.returncode == 0, r.stderr
    assert "lineage:    v1 (" in r.stdout and "-> v2 (" in r.stdout
    assert "[sgd].momentum" in r.stdout


def test_diff_against_parent_and_two_files() -> None:
    one = run("space", "diff", "search_spaces/unet_dstl/v2.yaml")
    two = run("space", "diff", "search_spaces/unet_dstl/v1.yaml", "search_spaces/unet_dstl/v2.yaml")
    assert one.returncode == two.returncode == 0
    assert one.stdout == two.stdout and "narrowed  lr" in one.stdout


def test_bad_usage_is_one_line_naming_the_commands_help() -> None:
    r = run("space", "diff")
    assert r.returncode == 2
    assert r.stderr.strip() == "error: Missing argument 'OLD'. (see `orchestrator space diff --help`)"
    r = run("space", "frobnicate")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "No such command 'frobnicate'" in r.stderr and "orchestrator space --help" in r.stderr


def test_domain_error_is_one_line_and_debug_shows_traceback(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.yaml")
    r = run("space", "show", missing)
    assert r.returncode == 1 and r.stderr.strip() == f"error: {missing}: no such file"
    r = run("--debug", "space", "show", missing)
    assert r.returncode == 1 and "Traceback" in r.stderr


@pytest.mark.parametrize(
    "code",
    [
        "import orchestrator.spaces",
        "import orchestrator.spaces.diff, orchestrator.spaces.check, orchestrator.spaces.show",
        "import orchestrator.cli",
        "import trainables",
    ],
)
def test_light_modules_import_no_heavy_frameworks(code: str) -> None:
    probe = f"{code}; import sys; print([m for m in {HEAVY!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


def test_light_commands_import_no_heavy_frameworks() -> None:
    probe = (
        "import sys; from orchestrator.cli import main\n"
        "try:\n    main(['space', 'validate', '-q'])\nexcept SystemExit as e:\n    code = e.code\n"
        f"print(code, [m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.stdout.strip().splitlines()[-1] == "0 []", out.stderr


# What a reviewer runs against a study: none of them starts a search, so none loads Ray or torch (``ui`` is the same
# module path and starts a server: tests/review/test_ui.py).
READ_ONLY_COMMANDS = {
    "report": ("report", "light"),
    "trials-export": ("trials", "export", "light", "--out", "{tmp}/trials.parquet"),
    "refine-dry-run": ("space", "refine", "{space}", "--dry-run", "--min-trials", "2"),
    "diff": ("space", "diff", "{v2}", "--tracking-uri", "{uri}"),
    "lint": ("space", "lint", "{folder}", "--tracking-uri", "{uri}"),
}


@pytest.mark.parametrize("args", READ_ONLY_COMMANDS.values(), ids=READ_ONLY_COMMANDS.keys())
def test_read_only_commands_on_a_study_import_neither_ray_nor_torch(
    tmp_path: Path, store_uri: str, args: tuple[str, ...]
) -> None:
    space, v2 = (
        write_space(
            tmp_path,
            study="light",
            version=version,
            params=f"  x: {{uniform: [-5.0, {high}]}}\n  y: {{uniform: [0.0, 15.0]}}\n",
            fixed="{function: branin}",
        )
        for version, high in ((1, 10.0), (2, 8.0))
    )
    log_scored_trials(store_uri, space)
    argv = [a.format(tmp=tmp_path, space=space, v2=v2, folder=space.parent, uri=store_uri) for a in args]
    probe = (
        "import sys\nfrom orchestrator.cli import main\ncode = 0\n"
        f"try:\n    main({argv!r})\nexcept SystemExit as e:\n    code = e.code\n"
        "print(code, sorted(m for m in ('ray', 'torch') if m in sys.modules))"
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": store_uri}
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120
    )
    code, loaded = out.stdout.strip().splitlines()[-1].split(" ", 1)
    assert loaded == "[]", out.stdout + out.stderr
    assert code in ("0", "1"), out.stdout + out.stderr  # refine may find no reason to change: an answer too
    assert "error: tracking store" not in out.stderr, out.stderr  # it read the study


def test_validate_checks_the_trainable(tmp_path: Path) -> None:
    unknown_key = write_space(tmp_path, MINIMAL.replace("x: {uniform", "lr: {uniform"))
    r = run("space", "validate", str(unknown_key))
    assert r.returncode == 1
    assert "params.lr: trainable 'analytic': lr: not a key this trainable accepts" in r.stderr
    unknown = write_space(tmp_path, MINIMAL.replace("trainable: analytic", "trainable: unet2"), study="other")
    unknown.write_text(unknown.read_text().replace("study: demo", "study: other"))
    r = run("space", "validate", str(unknown))
    assert r.returncode == 1 and "unknown trainable 'unet2'; did you mean 'unet'?" in r.stderr
