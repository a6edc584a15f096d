"""What a test starts: Ray, a server or training, in the test process and in every Python process it starts.

The suite's rule (``tests/plugin.py``): a test that starts any of them is marked ``slow``, and a ``slow`` test
starts one. This module sees the starts. It is standard library only and loaded twice over:

- by ``tests/plugin.py`` into the pytest process, and
- by ``sitecustomize`` (beside it) in every Python process started from there (the plugin puts this folder on
  ``PYTHONPATH``): ``python -m orchestrator run`` in a subprocess, ``ray start``, Ray's workers, which
  run the trials. A start there is a start by the test that started the process.

Each start appends one JSON line (``{"kind", "how", "pid"}``) to the file named by ``$ORCHESTRATOR_TEST_STARTS``;
the plugin reads what a test's setup, call and fixtures added. Without the variable nothing is watched.

What counts, and where it is seen (a module is patched right after it is first imported, so callers that
imported the name later get the watched one):

- Ray: ``ray.init`` (a local Ray, or a driver joining a cluster), the ``ray start`` command and
  ``ray.cluster_utils.Cluster`` (nodes).
- a server: ``orchestrator.tracking.server.LoopbackMlflowServer.launch`` (the tests', the benchmarks' and
  ``orchestrator ui``'s ``mlflow server``, the team stack's too) and the team stack's PostgreSQL and S3
  (``orchestrator.tracking.team_server``).
- training: an epoch of a family's model on its data, that is ``trainables.loop.train_epoch`` on a task a
  registered family built (the task carries the family's name): Ray Tune's trials, ``orchestrator train``,
  ``trainables.create(name)(config, reporter)`` and the benchmarks' trials in a test. A configuration refused,
  or a checkpoint that cannot be read, before the first epoch trains nothing; the shared loop's own unit tests
  that feed ``fit`` a hand-made model of a few weights exercise its control flow, not a family's training.
  These stay quick.
"""

from __future__ import annotations

import functools
import importlib.abc
import json
import os
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

LOG_ENV = "ORCHESTRATOR_TEST_STARTS"
RAY, SERVER, TRAINING = "Ray", "a server", "training"
_WATCHED = "__startwatch__"


def record(kind: str, how: str) -> None:
    """Append one start to the file named by ``$ORCHESTRATOR_TEST_STARTS`` (one ``O_APPEND`` write: whole lines
    from concurrent processes)."""
    path = os.environ.get(LOG_ENV)
    if not path:
        return
    line = json.dumps({"kind": kind, "how": how, "pid": os.getpid()}) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def watch(owner: Any, name: str, kind: str, how: str) -> None:
    """Replace ``owner.name`` by a function that records ``kind`` and calls it (once: idempotent)."""
    original = getattr(owner, name)
    if getattr(original, _WATCHED, False):
        return

    @functools.wraps(original)
    def watched(*args: Any, **kwargs: Any) -> Any:
        record(kind, how)
        return original(*args, **kwargs)

    setattr(watched, _WATCHED, True)
    setattr(owner, name, watched)


def watch_training(loop: ModuleType) -> None:
    """Record a start of training when an epoch (``train_epoch``) begins on a task a registered family built."""

    def is_family_task(task: Any) -> bool:
        registry = sys.modules.get("trainables.registry")
        return registry is not None and getattr(task, "name", None) in registry.names()

    original = loop.train_epoch
    if getattr(original, _WATCHED, False):
        return

    @functools.wraps(original)
    def watched(task: Any, *args: Any, **kwargs: Any) -> Any:
        if is_family_task(task):
            record(TRAINING, f"an epoch of {task.name} on the shared loop")
        return original(task, *args, **kwargs)

    setattr(watched, _WATCHED, True)
    loop.train_epoch = watched


PATCHES: dict[str, Callable[[ModuleType], None]] = {
    "ray": lambda m: watch(m, "init", RAY, "ray.init"),
    "ray.cluster_utils": lambda m: watch(m.Cluster, "add_node", RAY, "ray.cluster_utils.Cluster (a node)"),
    "orchestrator.tracking.server": lambda m: watch(
        m.LoopbackMlflowServer, "launch", SERVER, "LoopbackMlflowServer (mlflow server)"
    ),
    "orchestrator.tracking.team_server": lambda m: (
        watch(m.Postgres, "start", SERVER, "PostgreSQL (the team stack)"),
        watch(m.MotoS3, "start", SERVER, "moto's S3 (the team stack)"),
    ),
    "trainables.loop": watch_training,
}


class _PatchAfterImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: for a module of ``PATCHES`` it wraps the real loader so the patch runs once the
    module's code has run, then puts the real loader back on the module."""

    def __init__(self) -> None:
        self._finding: set[str] = set()

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> Any:
        patch = PATCHES.get(fullname)
        if patch is None or fullname in self._finding:
            return None
        self._finding.add(fullname)
        try:
            spec = next(
                (
                    found
                    for finder in sys.meta_path
                    if finder is not self
                    and hasattr(finder, "find_spec")
                    and (found := finder.find_spec(fullname, path, target)) is not None
                ),
                None,
            )
        finally:
            self._finding.discard(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _PatchingLoader(spec.loader, patch)
        return spec


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, loader: Any, patch: Callable[[ModuleType], None]) -> None:
        self.loader, self.patch = loader, patch

    def __getattr__(self, name: str) -> Any:
        """What else a loader offers (``get_code`` for ``python -m``, ``get_source``): the real one's."""
        return getattr(self.loader, name)

    def create_module(self, spec: Any) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        module.__loader__ = self.loader  # the module keeps its real loader (resources, source)
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        self.loader.exec_module(module)
        self.patch(module)


def _ray_start_command() -> bool:
    """This process is the ``ray start`` command (a Ray node)."""
    argv = getattr(sys, "argv", None) or [""]
    return os.path.basename(argv[0]) == "ray" and "start" in argv[1:2]


def install() -> None:
    """Watch this process: patch what is imported already, the rest when it is imported (once per process,
    whether this module was loaded as ``sitecustomize`` or by the plugin)."""
    if not os.environ.get(LOG_ENV) or any(type(f).__name__ == _PatchAfterImport.__name__ for f in sys.meta_path):
        return
    if _ray_start_command():
        record(RAY, "ray start (a node)")
    for name, patch in PATCHES.items():
        if name in sys.modules:
            patch(sys.modules[name])
    sys.meta_path.insert(0, _PatchAfterImport())


install()
