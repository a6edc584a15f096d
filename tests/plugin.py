"""The test suite's plugin: its shared fixtures and the rules it enforces (registered by ``tests/conftest.py``).

Fixtures, for every test folder:

- tracking stores: ``store_uri`` (a fresh SQLite store in the test's folder), ``store`` (an ``MlflowStore`` on
  it) and ``sqlite_template`` (session: an empty store with MLflow's tables, made once and cached; ``.copy(folder)``
  gives a fresh store in milliseconds where creating one runs MLflow's migrations for seconds, ``.server(root)``
  a real ``mlflow server`` on such a copy);
- services: ``mlflow_server`` (session: one real ``mlflow server`` on loopback), ``team`` (session: the team's
  tracking server, PostgreSQL, S3 and basic-auth, from ``tests/team/stack.py``) and ``local_ray`` (a local Ray
  shared by the tests that ask for it; shut down at the end of the session).

Space documents are built by ``tests/spacefiles.py`` (plain functions, no fixture).

Rules:

- ``slow`` is on exactly the tests that start Ray, a server or training (what counts:
  ``tests/startwatch/startwatch.py``, which sees the starts in this process and in every Python process a
  test starts). A test that starts one without the mark fails, saying so; so does a ``slow`` test that
  starts none (it belongs in the quick loop, ``make test-fast``). A fixture seen to start one makes every
  test that uses it start one, whichever test set it up first; a test not marked ``slow`` that uses such
  a fixture fails before its fixtures are set up.
- Property tests take their example counts from ``examples(n)``: ``n`` in the default Hypothesis profile
  (``make test``, CI), a tenth of it in the ``quick`` profile (``make test-fast``).
- No test module imports another (``tests/test_suite_rules.py``).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from orchestrator.tracking import mlflow_store
from orchestrator.tracking.mlflow_store import MlflowStore
from orchestrator.tracking.server import LoopbackMlflowServer
from tests.team.stack import team  # noqa: F401  (the team's tracking server, one per session: tests/team/stack.py)

STARTWATCH = Path(__file__).resolve().parent / "startwatch"
SLOW = "slow"
SLOW_HELP = f"{SLOW}: starts Ray, a server or training (enforced by tests/plugin.py; `make test-fast` leaves these out)"

# --------------------------------------------------------------------------- Hypothesis example counts

QUICK_PROFILE = "quick"
QUICK_FRACTION = 10  # the quick profile runs 1/QUICK_FRACTION of each property test's examples
settings.register_profile(QUICK_PROFILE, max_examples=settings.default.max_examples // QUICK_FRACTION)


def examples(n: int) -> int:
    """A property test's example count: ``n`` under the default profile, a tenth under ``quick`` (at least 10)."""
    scale = settings().max_examples / settings.get_profile("default").max_examples
    return n if scale >= 1 else max(10, round(n * scale))


# --------------------------------------------------------------------------- tracking stores


@dataclass(frozen=True)
class SqliteTemplate:
    """An empty SQLite tracking store with MLflow's tables; copies of its file are fresh stores."""

    db: Path

    def copy(self, folder: Path) -> str:
        """A fresh store ``folder/mlflow.db`` (made from the template); returns its ``sqlite:///`` URI."""
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / "mlflow.db"
        shutil.copyfile(self.db, target)
        return f"sqlite:///{target}"

    def server(self, root: Path) -> LoopbackMlflowServer:
        """A real ``mlflow server`` (not started) whose store ``root/mlflow.db`` is a fresh copy: it starts without
        running MLflow's migrations (3-5 s less here)."""
        self.copy(root)
        return LoopbackMlflowServer(root)


def _template_key() -> str:
    """What an empty store depends on: MLflow's version (its schema) and the code that creates a store."""
    code = hashlib.sha256(Path(mlflow_store.__file__).read_bytes()).hexdigest()[:12]
    return f"mlflow-{importlib.metadata.version('mlflow')}-{code}"


def _make_store(db: Path) -> None:
    """An empty store at ``db``, made under a private name and moved into place (sessions may race)."""
    private = db.with_name(f".{db.name}.{os.getpid()}.creating")
    MlflowStore(f"sqlite:///{private}").check_reachable()
    os.replace(private, db)


@pytest.fixture(scope="session")
def sqlite_template(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> SqliteTemplate:
    """An empty store, made once (MLflow creates and migrates its tables: seconds) and kept in pytest's cache for
    the next sessions, keyed by MLflow's version and the store code (a session without the cache makes its own);
    every store of the tests is a copy of its file."""
    cache = getattr(request.config, "cache", None)
    if cache is not None:
        db = cache.mkdir(f"sqlite-template-{_template_key()}") / "mlflow.db"
    else:
        db = tmp_path_factory.mktemp("sqlite-template") / "mlflow.db"
    if not db.exists():
        _make_store(db)
    return SqliteTemplate(db)


@pytest.fixture
def store_uri(tmp_path: Path, sqlite_template: SqliteTemplate) -> str:
    """A fresh SQLite tracking store of the test's own, ``tmp_path/store/mlflow.db``; its ``sqlite:///`` URI."""
    return sqlite_template.copy(tmp_path / "store")


@pytest.fixture
def store(store_uri: str) -> MlflowStore:
    """An ``MlflowStore`` on the test's fresh SQLite store (``store_uri``)."""
    return MlflowStore(store_uri)


# --------------------------------------------------------------------------- services (their users are slow)


@pytest.fixture(scope="session")
def mlflow_server(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: SqliteTemplate
) -> Iterator[LoopbackMlflowServer]:
    """One real ``mlflow server`` on loopback for the whole session (its SQLite store made from the template)."""
    with sqlite_template.server(tmp_path_factory.mktemp("mlflow")) as server:
        yield server


@pytest.fixture(scope="session")
def _ray_session() -> Iterator[None]:
    yield
    import ray

    if ray.is_initialized():
        ray.shutdown()


@pytest.fixture
def local_ray(_ray_session: None) -> None:
    """A local Ray shared by the tests that use it (runs reuse it instead of starting their own)."""
    import ray

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)


# --------------------------------------------------------------------------- the slow rule


@dataclass
class Starts:
    """The starts of the session, read from the watcher's file, and who made them."""

    path: Path
    offset: int = 0
    current: list[dict[str, Any]] = field(default_factory=list)  # the running test's starts
    by_fixture: dict[Any, set[str]] = field(default_factory=dict)  # FixtureDef -> what its setup started

    def read(self) -> list[dict[str, Any]]:
        """The starts recorded since the last read."""
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        complete = data[: data.rfind(b"\n") + 1]  # a line still being written is read next time
        self.offset += len(complete)
        return [json.loads(line) for line in complete.splitlines() if line.strip()]


STARTS = pytest.StashKey[Starts]()
ENV_SAVED = pytest.StashKey[dict[str, str | None]]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", SLOW_HELP)
    from tests.startwatch import startwatch

    fd, name = tempfile.mkstemp(prefix="orchestrator-test-starts-", suffix=".jsonl")
    os.close(fd)
    config.stash[ENV_SAVED] = {k: os.environ.get(k) for k in (startwatch.LOG_ENV, "PYTHONPATH")}
    os.environ[startwatch.LOG_ENV] = name
    paths = [str(STARTWATCH), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))  # children load the watcher
    startwatch.install()
    config.stash[STARTS] = Starts(Path(name))


def pytest_unconfigure(config: pytest.Config) -> None:
    starts = config.stash.get(STARTS, None)
    if starts is not None:
        starts.path.unlink(missing_ok=True)
    for key, value in config.stash.get(ENV_SAVED, {}).items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _starts(item: pytest.Item) -> Starts:
    return item.config.stash[STARTS]


def _is_slow(item: pytest.Item) -> bool:
    return item.get_closest_marker(SLOW) is not None


def _describe(records: list[dict[str, Any]]) -> str:
    seen = dict.fromkeys(f"{r['kind']} ({r['how']})" for r in records)
    return ", ".join(seen)


def _starting_fixtures(item: pytest.Item) -> dict[str, set[str]]:
    """The fixtures ``item`` uses that were seen to start something: name -> kinds."""
    starts = _starts(item)
    info = getattr(item, "_fixtureinfo", None)
    found = {}
    for name in getattr(item, "fixturenames", ()):
        defs = info.name2fixturedefs.get(name) if info is not None else None
        if defs and defs[-1] in starts.by_fixture:
            found[name] = starts.by_fixture[defs[-1]]
    return found


def _not_marked(item: pytest.Item, what: str) -> str:
    return (
        f"{item.nodeid} starts {what} but is not marked slow: add @pytest.mark.slow "
        "(the suite's rule, tests/plugin.py: slow on exactly the tests that start Ray, a server or training)"
    )


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before any fixture: a quick test must not use a fixture that starts Ray, a server or training."""
    starts = _starts(item)
    starts.read()  # whatever came in between tests belongs to none
    starts.current = []
    if not _is_slow(item) and (used := _starting_fixtures(item)):
        what = ", ".join(f"{sorted(kinds)} (fixture {name})" for name, kinds in used.items())
        pytest.fail(_not_marked(item, what), pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    starts = request.config.stash[STARTS]
    starts.current += starts.read()
    try:
        return (yield)
    finally:
        made = starts.read()
        if made:
            starts.by_fixture.setdefault(fixturedef, set()).update(r["kind"] for r in made)
            starts.current += [{**r, "how": f"{r['how']}, in fixture {fixturedef.argname}"} for r in made]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    report: pytest.TestReport = yield
    if call.when == "setup":
        return report
    starts = _starts(item)
    if call.when == "teardown":
        late = starts.read()  # started while tearing down
        if late and not _is_slow(item):
            _fail(report, _not_marked(item, _describe(late)))
        return report
    starts.current += starts.read()
    used = _starting_fixtures(item)
    started = _describe(starts.current) or ", ".join(f"{sorted(k)} (fixture {n})" for n, k in used.items())
    if started and not _is_slow(item):
        _fail(report, _not_marked(item, started))
    elif not started and _is_slow(item) and report.passed:
        _fail(
            report,
            f"{item.nodeid} is marked slow but started no Ray, server or training: remove the mark so that "
            "`make test-fast` runs it (the suite's rule, tests/plugin.py)",
        )
    return report


def _fail(report: pytest.TestReport, message: str) -> None:
    if report.failed and report.longrepr is not None:
        message = f"{report.longrepr}\n\n{message}"
    report.outcome = "failed"
    report.longrepr = message
