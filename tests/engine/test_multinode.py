"""A real multi-node Ray cluster on one machine (fake GPU counts): placement and fractional GPUs.

The same code path a KubeRay RayJob uses: `orchestrator run --address <cluster>`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.api import run_search
from orchestrator.engine.runner import SearchOptions
from orchestrator.tracking.server import LoopbackMlflowServer
from tests.spacefiles import ROOT, small_search, write_space

pytestmark = pytest.mark.slow

PARAMS = "  x: {uniform: [-1.0, 1.0]}\n"


@pytest.fixture(scope="module")
def cluster() -> Iterator[object]:
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    for _ in range(2):
        c.add_node(num_cpus=2, num_gpus=2)
    c.wait_for_nodes()
    yield c
    if ray.is_initialized():
        ray.shutdown()
    c.shutdown()


def children(client: MlflowClient, study: str) -> list:
    exp = client.get_experiment_by_name(study)
    return client.search_runs([exp.experiment_id], "tags.`orchestrator.kind` = 'trial'")


def max_overlap(intervals: list[tuple[int, int]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    best = now = 0
    for _, delta in events:
        now += delta
        best = max(best, now)
    return best


def test_trials_spread_over_nodes_with_fractional_gpus(
    cluster, tmp_path: Path, mlflow_server: LoopbackMlflowServer
) -> None:
    import ray

    space = write_space(
        tmp_path / "search_spaces",
        study="multinode",
        params=PARAMS,
        **small_search(8, 2, sleep=1.5, cpu=0.5, gpu=0.5, startup=8),
    )
    options = SearchOptions(address=cluster.address, tracking_uri=mlflow_server.uri, storage=str(tmp_path / "ray"))
    result = run_search(space, options, lambda _: None)
    ray.shutdown()
    assert result.finished == 8
    runs = children(MlflowClient(mlflow_server.uri), "multinode")
    assert len(runs) == 8
    nodes = {r.data.tags["orchestrator.node_id"] for r in runs}
    assert len(nodes) == 2, "trials must land on both GPU nodes"
    per_card: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    for r in runs:
        gpu_ids = r.data.tags["orchestrator.gpu_ids"].split(",")
        assert len(gpu_ids) == 1 and gpu_ids[0] in ("0", "1"), "gpu: 0.5 gets one card id"
        per_card[(r.data.tags["orchestrator.node_id"], gpu_ids[0])].append((r.info.start_time, r.info.end_time))
    # Half a GPU per trial: never more than two trials on one card at once.
    assert max(max_overlap(iv) for iv in per_card.values()) <= 2
    assert max_overlap([iv for ivs in per_card.values() for iv in ivs]) > 2, "trials ran in parallel"


def test_cli_run_with_address_distributes_trials(cluster, tmp_path: Path, mlflow_server: LoopbackMlflowServer) -> None:
    """`orchestrator run --address`: what a RayJob's entrypoint runs on the head node."""
    space = write_space(
        tmp_path / "search_spaces", study="viacli", params=PARAMS, **small_search(6, 1, sleep=1.0, startup=6)
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestrator",
            "run",
            str(space),
            "--address",
            cluster.address,
            "--tracking-uri",
            mlflow_server.uri,
            "--storage",
            str(tmp_path / "ray"),
            "--no-live",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "6 finished, 0 failed" in proc.stdout
    runs = children(MlflowClient(mlflow_server.uri), "viacli")
    assert len(runs) == 6
    assert len({r.data.tags["orchestrator.node_id"] for r in runs}) >= 2
    assert all(json.loads(r.data.tags["orchestrator.config"])["x"] <= 1 for r in runs)
