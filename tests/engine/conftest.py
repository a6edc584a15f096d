"""Real services for engine tests: an `mlflow server` process on loopback and a local Ray."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.tracking.server import LoopbackMlflowServer

# The name the engine and tracking tests import for the fixture's type.
MlflowServer = LoopbackMlflowServer


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackMlflowServer]:
    """One real server for the whole session (SQLite store in a temporary folder)."""
    with LoopbackMlflowServer(tmp_path_factory.mktemp("mlflow")) as server:
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


SPACE_HEAD = """\
study: {study}
version: {version}
{parent}trainable: analytic
metric: {{name: loss, mode: min}}
schedule: {{scheduler: {scheduler}, max_epochs: {epochs}, grace_period: 1}}
resources: {{cpu: {cpu}, gpu: {gpu}}}
search: {{trials: {trials}, startup_trials: {startup}}}
fixed: {{function: quadratic, sleep: {sleep}}}
params:
"""


def write_space(
    root: Path,
    study: str,
    params: str,
    version: int = 1,
    *,
    trials: int = 4,
    epochs: int = 3,
    startup: int = 4,
    scheduler: str = "fifo",
    sleep: float = 0.0,
    cpu: float = 1,
    gpu: float = 0,
) -> Path:
    folder = root / "search_spaces" / study
    folder.mkdir(parents=True, exist_ok=True)
    parent = f"parent: {version - 1}\n" if version > 1 else ""
    text = (
        SPACE_HEAD.format(
            study=study,
            version=version,
            parent=parent,
            scheduler=scheduler,
            epochs=epochs,
            cpu=cpu,
            gpu=gpu,
            trials=trials,
            startup=startup,
            sleep=sleep,
        )
        + params
    )
    path = folder / f"v{version}.yaml"
    path.write_text(text)
    return path


def convnet_tiny_space(study: str, params: str, *, trials: int) -> str:
    """A space file's text: ``trials`` FIFO trials of two epochs of convnet_tiny searching ``params`` (YAML lines)."""
    return (
        f"study: {study}\nversion: 1\ntrainable: convnet_tiny\nmetric: {{name: val_accuracy, mode: max}}\n"
        "schedule: {scheduler: fifo, max_epochs: 2}\nresources: {cpu: 1, gpu: 0}\n"
        f"search: {{trials: {trials}, startup_trials: 2}}\nparams:\n{params}"
    )
