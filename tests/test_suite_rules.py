"""The rules the suite keeps about itself: no test module (or conftest) imported by another module, and the
``slow`` rule of ``tests/plugin.py`` enforced both ways."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

from tests.spacefiles import ROOT

TESTS = ROOT / "tests"


def imported_modules(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """``(line, dotted name)`` of every module ``path`` imports, relative imports resolved against its package
    (``root`` holds the ``tests`` package)."""
    package = path.relative_to(root).with_suffix("").parts[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = [*base, *node.module.split(".")] if node.module else base
            found.append((node.lineno, ".".join(module)))
            found += [(node.lineno, ".".join([*module, alias.name])) for alias in node.names]  # from pkg import mod
    return found


def is_test_module(name: str) -> bool:
    last = name.rsplit(".", 1)[-1]
    return name.startswith("tests.") and (last.startswith("test_") or last == "conftest")


def test_no_test_module_or_conftest_is_imported_by_another_module() -> None:
    """What tests share lives in helper modules (not named ``test_*``) or in the plugin: a test module imported
    by another runs its module-level code twice and couples two files' tests; conftest modules are pytest's."""
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: imports {name}"
        for path in sorted(TESTS.rglob("*.py"))
        for line, name in imported_modules(path)
        if is_test_module(name)
    ]
    assert offenders == [], "move what they share into a helper module or tests/plugin.py:\n" + "\n".join(offenders)


def test_the_import_check_sees_absolute_relative_and_package_imports(tmp_path: Path) -> None:
    path = tmp_path / "tests" / "engine" / "helper.py"
    path.parent.mkdir(parents=True)
    path.write_text(
        "import tests.test_cli\nfrom tests.engine.test_resume import x\nfrom .test_backends import y\n"
        "from . import conftest\nfrom tests.spaces import strategies\nfrom .searcher_contract import HEAD\n"
    )
    names = [name for _, name in imported_modules(path, root=tmp_path)]
    assert [n for n in names if is_test_module(n)] == [
        "tests.test_cli",
        "tests.engine.test_resume",
        "tests.engine.test_backends",
        "tests.engine.conftest",
    ]


# --------------------------------------------------------------------------- the slow rule, in a session of its own

INNER_TESTS = """
import subprocess, sys
import pytest
from orchestrator.tracking.server import LoopbackMlflowServer

def start_a_server(tmp_path):
    LoopbackMlflowServer(tmp_path / "mlflow").launch().stop()  # a server started (and stopped at once)

def test_quick_and_starts_nothing():
    assert True

def test_quick_but_starts_a_server(tmp_path):
    start_a_server(tmp_path)

def test_quick_but_a_subprocess_starts_a_server(tmp_path):
    code = "import sys, pathlib; from orchestrator.tracking.server import LoopbackMlflowServer as S; "
    code += "S(pathlib.Path(sys.argv[1])).launch().stop()"
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "mlflow")], check=True)

@pytest.mark.slow
def test_slow_and_starts_a_server(tmp_path):
    start_a_server(tmp_path)

@pytest.mark.slow
def test_slow_but_starts_nothing():
    assert True

@pytest.fixture(scope="module")
def server_once(tmp_path_factory):
    start_a_server(tmp_path_factory.mktemp("m"))

@pytest.mark.slow
def test_slow_first_user_of_a_starting_fixture(server_once):
    pass

@pytest.mark.slow
def test_slow_later_user_of_a_starting_fixture(server_once):
    pass

def test_quick_later_user_of_a_starting_fixture(server_once):
    pass
"""


def test_the_slow_rule_fails_either_way_and_sees_subprocesses_and_fixtures(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A session of its own (the plugin, nine small tests): each way of breaking the rule fails, with its message;
    starts are seen in the test's process, in a process it started, and through a fixture another test set up."""
    pytester.makeconftest('pytest_plugins = ["tests.plugin"]\n')
    pytester.makepyfile(test_inner=INNER_TESTS)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--strict-markers")
    result.assert_outcomes(passed=4, failed=3, errors=1)
    text = result.stdout.str()
    for name in (
        "test_quick_but_starts_a_server",
        "test_quick_but_a_subprocess_starts_a_server",
    ):
        assert (
            f"test_inner.py::{name} starts a server (LoopbackMlflowServer (mlflow server)) but is not marked slow"
            in text
        )
    assert "test_inner.py::test_slow_but_starts_nothing is marked slow but started no Ray, server or training" in text
    assert (
        "test_inner.py::test_quick_later_user_of_a_starting_fixture starts ['a server'] (fixture server_once) "
        "but is not marked slow" in text
    )
