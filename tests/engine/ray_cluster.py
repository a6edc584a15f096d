"""A real multi-node Ray cluster on this machine, started with the ``ray`` command line: one process tree per node.

Unlike ``ray.cluster_utils.Cluster`` (nodes started inside the test's process), every node here is a
``ray start --block`` process of its own, in its own session (``setsid``), so a test can kill one
node as a lost machine would go: all of its processes (raylet, workers, agents) at once with
SIGKILL. Nodes share this machine's address, so each gets its own ports and ``--temp-dir``; head,
workers and every driver share ``RayCluster.env``: ``CLUSTER_ENV`` plus token authentication with a token made
for this cluster (``RAY_AUTH_MODE=token``, ``RAY_AUTH_TOKEN_PATH``: as a team's cluster runs, and a driver
without it is refused). With ``dashboard=True`` the head also serves Ray's dashboard and job server on
127.0.0.1 (``dashboard_url``), for ``orchestrator submit --ray-address``; the nodes' ``PATH`` starts with this
interpreter's folder, so a job's entrypoint finds ``orchestrator``. ``RayCluster.shutdown`` kills what it
started, and only that (never ``ray stop``, which would stop other tests' Ray on the same machine).

    with RayCluster(root, head_cpus=0) as cluster:
        victim = cluster.add_worker(cpus=2, gpus=1)
        cluster.add_worker(cpus=2, gpus=1)
        cluster.wait_for_nodes()
        ... run a driver with env=cluster.env against cluster.address ...
        victim.kill()
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

LOOPBACK = "127.0.0.1"
RAY_CLI = str(Path(sys.executable).with_name("ray"))
# The same in the head, the workers and every driver, or they cannot talk to each other: token auth (the token is
# the cluster's own: ``RayCluster.token_path``), and multi-node allowed. `tests/conftest.py` sets the latter to 0 to
# keep single-node Rays on 127.0.0.1, but a `ray start --address` worker refuses to start with it. With 1, Ray replaces
# 127.0.0.1 and localhost by the machine's own address wherever it meets them; other loopback addresses it keeps.
# So node k of a cluster runs on 127.0.0.<k+2> (``node_address``) and the head's GCS is on 127.0.0.2: every node
# has an address of its own, as on separate hosts, and all traffic stays on loopback.
CLUSTER_ENV = {"RAY_AUTH_MODE": "token", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1"}
FIRST_NODE_HOST = 2  # node k runs on 127.0.0.<FIRST_NODE_HOST + k>
# The GCS marks a node dead after `period * threshold` of failed checks (Ray's default is 3 s * 5,
# plus a long first delay); faster here so a test sees a lost node in seconds, with room for a busy machine.
FAST_NODE_DEATH_ENV = {
    "RAY_health_check_initial_delay_ms": "1000",
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "2000",
    "RAY_health_check_failure_threshold": "4",
}
# Ports are drawn below the kernel's ephemeral range, so outgoing connections do not take them meanwhile.
PORT_RANGE = (20000, 32000)
WORKER_PORTS_PER_NODE = 40
NODE_START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 10.0
SHUTDOWN_GRACE_S = 5.0  # for a node to stop on SIGTERM before it gets SIGKILL
LOG_TAIL_CHARS = 3000
STARTED_LINE = "Ray runtime started."  # what `ray start` prints once its node runs

# Run with this interpreter (address, nodes alive to wait for, seconds, mark): joins the cluster and prints
# every node Ray knows as JSON, after the mark (Ray may print to stdout too).
NODES_SCRIPT = """\
import json, sys, time, ray
ray.init(address=sys.argv[1], log_to_driver=False, logging_level="ERROR")
want, deadline = int(sys.argv[2]), time.monotonic() + float(sys.argv[3])
while True:
    nodes = ray.nodes()
    if sum(n["Alive"] for n in nodes) >= want or time.monotonic() > deadline:
        break
    time.sleep(0.5)
print(sys.argv[4] + json.dumps([{k: n[k] for k in ("NodeID", "Alive", "NodeManagerPort", "Resources")} for n in nodes]))
"""
NODES_MARK = "NODES "


class RayClusterError(RuntimeError):
    """A node did not start or the cluster did not come up; the message ends with the node's log."""


class PortPool:
    """Distinct TCP ports free on this machine right now, none handed out twice by one pool."""

    def __init__(self, low: int = PORT_RANGE[0], high: int = PORT_RANGE[1]) -> None:
        self.low, self.high = low, high
        self._rng = random.Random()
        self._taken: set[int] = set()

    def port(self) -> int:
        return self.block(1)

    def block(self, count: int) -> int:
        """The first of ``count`` consecutive free ports (a node's worker port range)."""
        for _ in range(1000):
            first = self._rng.randrange(self.low, self.high - count)
            span = range(first, first + count)
            if not self._taken.intersection(span) and all(_free(p) for p in span):
                self._taken.update(span)
                return first
        raise RayClusterError(f"no {count} consecutive free ports in {self.low}-{self.high}")


def _free(port: int) -> bool:
    """Nothing listens on ``port``, on loopback or any address."""
    for host in (LOOPBACK, "0.0.0.0"):
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                return False
    return True


def session_pids(sid: int) -> list[int]:
    """Every process of session ``sid`` (field 6 of ``/proc/<pid>/stat``)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # it just exited
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces and parentheses
        if int(fields[3]) == sid:
            pids.append(int(entry.name))
    return pids


def _alive(pid: int) -> bool:
    """Running (a zombie, killed and not yet reaped, counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


@dataclass
class RayNode:
    """One ``ray start --block`` process and everything it started (all in the session it leads)."""

    name: str
    head: bool
    node_manager_port: int
    temp_dir: Path
    log_path: Path
    command: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    node_id: str = ""  # Ray's node id, known after RayCluster.wait_for_nodes
    resources: dict[str, float] = field(default_factory=dict)

    def launch(self) -> RayNode:
        """Run ``ray start --block`` in a session of its own (its log appended to ``log_path``); returns at once."""
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                start_new_session=True,
            )
        return self

    def wait_started(self, timeout: float = NODE_START_TIMEOUT_S) -> bool:
        """Wait until ``ray start`` says the node runs; False when it exits first or ``timeout`` passes."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if STARTED_LINE in self.log_tail(chars=None):
                return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.2)
        return False

    def pids(self) -> list[int]:
        """The node's live processes: raylet, its workers and agents (and the GCS on the head)."""
        assert self.proc is not None
        return [p for p in session_pids(self.proc.pid) if _alive(p)]

    def kill(self, sig: int = signal.SIGKILL, grace: float = STOP_TIMEOUT_S) -> list[int]:
        """Send ``sig`` to every process of the node, then SIGKILL what is left after ``grace`` seconds;
        returns the pids it found first. Raises when a process survives SIGKILL.

        SIGKILL is a lost machine: nothing of the node runs another line of code.
        """
        first = self.pids()
        if sig != signal.SIGKILL and self._signal_until_gone(sig, grace):
            return first
        if not self._signal_until_gone(signal.SIGKILL, STOP_TIMEOUT_S):
            raise RayClusterError(f"node {self.name}: processes {self.pids()} survive SIGKILL")
        return first

    def _signal_until_gone(self, sig: int, timeout: float) -> bool:
        """Signal the node's processes (also ones started meanwhile) until none is left or ``timeout`` passes."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while pids := self.pids():
            if time.monotonic() > deadline:
                return False
            self.signal(sig, pids)
            time.sleep(0.1)
            self.proc.poll()  # reap the `ray start` process (our child) once it exits
        return True

    def signal(self, sig: int, pids: list[int] | None = None) -> None:
        """Send ``sig`` to ``pids`` (default: every process of the node) and return at once."""
        for pid in self.pids() if pids is None else pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def log_tail(self, chars: int | None = LOG_TAIL_CHARS) -> str:
        """The end of the node's ``ray start`` output (all of it for ``chars=None``)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return text if chars is None else text[-chars:]


class RayCluster:
    """A head node and worker nodes, each a ``ray start`` process tree on this machine; see the module docstring.

    ``root`` keeps the nodes' logs; their ``--temp-dir`` folders are short paths under the system
    temporary folder (Ray's socket paths must stay under 108 characters) and removed with the cluster.
    """

    def __init__(
        self,
        root: Path,
        *,
        head_cpus: int = 0,
        head_gpus: int = 0,
        env: Mapping[str, str] | None = None,
        dashboard: bool = False,
        token: str | None = None,
    ) -> None:
        """``env`` is added to every node's environment (for example ``FAST_NODE_DEATH_ENV``); ``dashboard``
        starts Ray's dashboard and job server on the head; ``token`` is the cluster's token (default: a new one)."""
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.head_cpus, self.head_gpus = head_cpus, head_gpus
        self.node_env = dict(env or {})
        self.dashboard = dashboard
        self.token_path = self.root / "ray-auth-token"
        self.token_path.write_text(token or secrets.token_hex(32))
        self.token_path.chmod(0o600)
        self.ports = PortPool()
        self.gcs_port = 0
        self.dashboard_port = 0
        self.nodes: list[RayNode] = []
        self._temp = Path(tempfile.mkdtemp(prefix="rc-"))

    # ------------------------------------------------------------------ environment

    @property
    def address(self) -> str:
        """The head's GCS address: what ``ray.init``, ``ray start --address`` and ``orchestrator --address`` take."""
        return f"{self.node_address(0)}:{self.gcs_port}"

    @staticmethod
    def node_address(index: int) -> str:
        """The loopback address of the cluster's node ``index`` (0: the head)."""
        return f"127.0.0.{FIRST_NODE_HOST + index}"

    @property
    def dashboard_url(self) -> str:
        """The head's Jobs API (``submit --ray-address``); started with ``dashboard=True``."""
        return f"http://{LOOPBACK}:{self.dashboard_port}"

    @property
    def env(self) -> dict[str, str]:
        """The environment a driver needs to join this cluster: this process's, plus ``CLUSTER_ENV`` and the token
        file (``RAY_AUTH_TOKEN``, which would take precedence, removed); this interpreter's folder first on PATH."""
        env = {**os.environ, **CLUSTER_ENV, "RAY_AUTH_TOKEN_PATH": str(self.token_path)}
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        env.pop("RAY_ADDRESS", None)
        env.pop("RAY_AUTH_TOKEN", None)
        return env

    @property
    def head(self) -> RayNode:
        return self.nodes[0]

    @property
    def workers(self) -> list[RayNode]:
        return self.nodes[1:]

    # ------------------------------------------------------------------ nodes

    def start(self) -> RayCluster:
        """Start the head node (its GCS at ``address``)."""
        if self.nodes:
            raise RayClusterError("the cluster is already started")
        self.gcs_port = self.ports.port()
        self.dashboard_port = self.ports.port()
        head_args = [
            "--head",
            f"--port={self.gcs_port}",
            f"--include-dashboard={str(self.dashboard).lower()}",
            f"--dashboard-host={LOOPBACK}",
            f"--dashboard-port={self.dashboard_port}",
        ]
        head = self._start_node("head", head_args, cpus=self.head_cpus, gpus=self.head_gpus)
        # Workers start once the GCS answers: started together on a busy machine, nodes miss Ray's fixed
        # 30 s registration deadline.
        if not head.wait_started():
            raise RayClusterError(f"the head node did not start:\n{head.log_tail()}")
        return self

    def add_worker(self, cpus: int, gpus: int = 0, name: str | None = None) -> RayNode:
        """Start a worker node joining the head (fake GPUs: Ray only counts them)."""
        if not self.nodes:
            raise RayClusterError("start the head before adding workers")
        name = name or f"worker{len(self.nodes)}"
        return self._start_node(name, [f"--address={self.address}"], cpus=cpus, gpus=gpus)

    def _start_node(self, name: str, role_args: list[str], cpus: int, gpus: int) -> RayNode:
        manager_port = self.ports.port()
        first_worker_port = self.ports.block(WORKER_PORTS_PER_NODE)
        temp_dir = self._temp / name
        command = [
            RAY_CLI,
            "start",
            "--block",
            *role_args,
            f"--node-ip-address={self.node_address(len(self.nodes))}",
            f"--num-cpus={cpus}",
            f"--num-gpus={gpus}",
            f"--temp-dir={temp_dir}",
            f"--node-manager-port={manager_port}",
            f"--object-manager-port={self.ports.port()}",
            f"--min-worker-port={first_worker_port}",
            f"--max-worker-port={first_worker_port + WORKER_PORTS_PER_NODE - 1}",
            f"--dashboard-agent-listen-port={self.ports.port()}",
            f"--dashboard-agent-grpc-port={self.ports.port()}",
            f"--metrics-export-port={self.ports.port()}",
            f"--runtime-env-agent-port={self.ports.port()}",
            "--object-store-memory=100000000",
            "--disable-usage-stats",
        ]
        # The head (the first node) keeps Ray's single-machine rule, so it advertises 127.0.0.1; workers need
        # multi-node allowed, and then take their address from the head's, so they are on 127.0.0.1 too.
        env = {**self.env, **self.node_env}
        node = RayNode(name, not self.nodes, manager_port, temp_dir, self.root / f"{name}.log", command, env)
        self.nodes.append(node)
        return node.launch()

    def wait_for_nodes(self, timeout: float = NODE_START_TIMEOUT_S) -> list[dict[str, Any]]:
        """Wait until every node started here is alive in the GCS and learn each node's id; returns Ray's view."""
        for node in self.workers:
            if node.wait_started(timeout):
                continue
            # One more try for a worker that gave up (Ray's registration deadline on a busy machine).
            node.kill()
            if not node.launch().wait_started(timeout):
                raise RayClusterError(f"node {node.name} did not start, twice:\n{node.log_tail()}")
        known = self.ray_nodes(want_alive=len(self.nodes), timeout=timeout)
        by_port = {n["NodeManagerPort"]: n for n in known if n["Alive"]}
        for node in self.nodes:
            info = by_port.get(node.node_manager_port)
            if info is None:
                raise RayClusterError(f"node {node.name} did not join in {timeout:.0f}s:\n{node.log_tail()}")
            node.node_id, node.resources = info["NodeID"], info["Resources"]
        return known

    def wait_for_job_server(self, timeout: float = NODE_START_TIMEOUT_S) -> None:
        """Wait until the head's job server answers an authenticated request (``dashboard=True``)."""
        request = urllib.request.Request(
            f"{self.dashboard_url}/api/version", headers={"Authorization": f"Bearer {self.token_path.read_text()}"}
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(request, timeout=5) as answer:
                    if answer.status == 200:
                        return
            except OSError as e:
                if time.monotonic() > deadline:
                    raise RayClusterError(f"no job server at {self.dashboard_url}: {e}\n{self.head.log_tail()}") from e
            time.sleep(0.5)

    def ray_nodes(self, want_alive: int = 0, timeout: float = 0.0) -> list[dict[str, Any]]:
        """Every node the GCS knows (``ray.nodes()``: NodeID, Alive, NodeManagerPort, Resources), from a
        short driver in its own process; waits up to ``timeout`` for ``want_alive`` nodes alive."""
        proc = subprocess.run(
            [sys.executable, "-c", NODES_SCRIPT, self.address, str(want_alive), str(timeout), NODES_MARK],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout + 60,
        )
        if proc.returncode != 0:
            raise RayClusterError(f"cannot list the cluster's nodes:\n{proc.stderr[-LOG_TAIL_CHARS:]}")
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(NODES_MARK)]
        if not lines:
            raise RayClusterError(f"the node listing printed no nodes:\n{proc.stdout[-LOG_TAIL_CHARS:]}")
        return json.loads(lines[-1].removeprefix(NODES_MARK))

    # ------------------------------------------------------------------ teardown

    def shutdown(self, grace: float = SHUTDOWN_GRACE_S) -> None:
        """Stop every node: SIGTERM to all of them at once, then SIGKILL what is left after ``grace`` seconds;
        nothing keeps running. Raises when a process survives SIGKILL."""
        for node in self.nodes:
            node.signal(signal.SIGTERM)
        errors = []
        for node in reversed(self.nodes):
            try:
                node.kill(signal.SIGTERM, grace)
            except RayClusterError as e:
                errors.append(str(e))
        shutil.rmtree(self._temp, ignore_errors=True)
        if errors:
            raise RayClusterError("; ".join(errors))

    def __enter__(self) -> RayCluster:
        try:
            return self.start()
        except BaseException:
            self.shutdown()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.shutdown()


def started_cluster(root: Path, workers: list[tuple[int, int]], **options: Any) -> Iterator[RayCluster]:
    """A started cluster with ``workers`` as ``(cpus, gpus)`` per worker node, all joined; for fixtures."""
    with RayCluster(root, **options) as cluster:
        for cpus, gpus in workers:
            cluster.add_worker(cpus=cpus, gpus=gpus)
        cluster.wait_for_nodes()
        yield cluster
