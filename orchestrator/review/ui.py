"""``orchestrator ui``: the MLflow UI over the tracking store, with links to a study's experiment and best run.

A local store (``sqlite:///``, the default ``.orchestrator/mlflow.db``, or another database) is served by a
real ``mlflow server`` bound to 127.0.0.1 (``tracking.server.LoopbackMlflowServer``) until Ctrl-C; its
log and proxied-artifact folder sit next to a SQLite file (``server.log``, ``artifacts/``, where the store
already keeps the studies' artifacts). A team server (``http(s)://``) is already serving: its links are
printed, without credentials, and the command returns.

The best run is the study's best trial run (any version) by the metric of the study's newest search:
its ``best_<metric>`` (the best epoch), else the metric's last value. A study of several objectives links the
knee of its feasible front instead (``engine.leaderboard``'s rule over its finished trials), and says how to
list the front in the UI (the ``orchestrator.pareto_rank`` tag's filter).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlparse

from orchestrator.console import Echo
from orchestrator.errors import OrchestratorError
from orchestrator.redaction import redact_uri
from orchestrator.spaces import Metric
from orchestrator.tracking.links import experiment_url, run_url
from orchestrator.tracking.mlflow_store import MlflowStore, describe_uri, open_store, sqlite_path
from orchestrator.tracking.schema import PARETO_RANK
from orchestrator.tracking.server import (
    DEFAULT_UI_PORT,
    LOOPBACK,
    LoopbackMlflowServer,
    check_port_free,
    stopped_by_signals,
)
from orchestrator.tracking.study import StudyGoals, best_trial, study_goals

REMOTE_SCHEMES = ("http", "https")
GENAI_HINT = (
    'the links open MLflow\'s training view; its start page opens the GenAI view ("Model training" at the top of '
    "the sidebar switches)"
)
POLL_S = 0.5  # how often a served UI checks that its server is still up


@dataclass(frozen=True)
class StudyLinks:
    """Where a study is in the MLflow UI."""

    study: str
    experiment_url: str
    metric: Metric | None = None
    best_run_id: str | None = None
    best_value: float | None = None
    best_run_url: str | None = None
    knee: str | None = None  # several objectives: the best run is the knee of the front, its values

    def lines(self) -> list[str]:
        out = [f"  study {self.study}: {self.experiment_url}"]
        if self.best_run_url is not None and self.knee is not None:
            out.append(f"  knee of the Pareto front ({self.knee}): {self.best_run_url}")
            out.append(f'  the front: search the runs for tags."{PARETO_RANK}" = "0" (each search\'s own front)')
        elif self.best_run_url is not None and self.metric is not None:
            out.append(f"  best run ({self.metric.name} {self.best_value:.5g}): {self.best_run_url}")
        else:
            out.append("  no finished trial with the study's metric yet")
        return out


def study_links(store: MlflowStore, study: str, base: str) -> StudyLinks:
    """The links of ``study`` in the UI at ``base``; ``OrchestratorError`` when the store has no such study."""
    experiment_id = store.experiment_id(study, create=False)
    if experiment_id is None:
        raise OrchestratorError(f"no study {study!r} in the tracking store {describe_uri(store.uri)}")
    links = StudyLinks(study, experiment_url(base, experiment_id))
    goals = study_goals(store, study)
    if goals is not None and goals.multi_objective:
        return _knee_links(store, goals, links, base, experiment_id)
    metric = goals.metric if goals is not None else None
    best = best_trial(store.trials(study), metric) if metric is not None else None
    if best is None:
        return links
    row, value = best
    return StudyLinks(study, links.experiment_url, metric, row.run_id, value, run_url(base, experiment_id, row.run_id))


def _knee_links(store: MlflowStore, goals: StudyGoals, links: StudyLinks, base: str, experiment_id: str) -> StudyLinks:
    from orchestrator.engine.leaderboard import Leaderboard, outcomes_from_rows

    finished = [r for r in store.trials(links.study) if r.status == "FINISHED"]
    board = Leaderboard.by_front(
        goals.goals, goals.constraints, outcomes_from_rows(finished, goals.goals, goals.constraints)
    )
    knee = board.best
    if knee is None:
        return replace(links, metric=goals.metric)
    url = run_url(base, experiment_id, knee.run_id)
    return replace(
        links,
        metric=goals.metric,
        best_run_id=knee.run_id,
        best_value=knee.value,
        best_run_url=url,
        knee=board.point_text(knee),
    )


def open_ui(
    tracking_uri: str,
    study: str | None = None,
    port: int = DEFAULT_UI_PORT,
    echo: Echo = print,
    wait: Callable[[LoopbackMlflowServer], None] | None = None,
) -> StudyLinks | None:
    """Serve the local store at ``tracking_uri`` on 127.0.0.1:``port`` until Ctrl-C, or print a team server's links.

    Prints the UI's address, then ``study``'s links (its experiment and best run) and a hint for MLflow 3's
    start page. ``wait`` blocks while the UI is up (default: until Ctrl-C or the server exits); the
    server is stopped when it returns. Returns the study's links (None without ``study``).
    """
    store = open_store(tracking_uri)
    remote = urlparse(tracking_uri).scheme.lower() in REMOTE_SCHEMES
    if not remote:
        check_port_free(port)  # before any link to that port is printed
    base = redact_uri(tracking_uri).rstrip("/") if remote else f"http://{LOOPBACK}:{port}"
    links = study_links(store, study, base) if study else None  # before a server starts: a wrong name is one line
    if remote:
        _print_links(echo, f"MLflow UI of the team server {base}", links)
        return links
    db = sqlite_path(tracking_uri)
    with ExitStack() as stack:
        stack.enter_context(stopped_by_signals())  # SIGTERM and SIGHUP stop the server as Ctrl-C does
        # the server's log (and MLflow's proxied-artifact folder) beside a SQLite file; else a folder of its own
        root = db.resolve().parent if db is not None else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        server = stack.enter_context(LoopbackMlflowServer(root, port=port, backend_store_uri=tracking_uri))
        _print_links(echo, f"MLflow UI of {describe_uri(tracking_uri)} at {base} (Ctrl-C stops it)", links)
        try:
            (wait or _until_interrupted)(server)
        except KeyboardInterrupt:
            echo("stopping the MLflow UI")
    return links


def _print_links(echo: Echo, headline: str, links: StudyLinks | None) -> None:
    echo(headline)
    for line in links.lines() if links is not None else []:
        echo(line)
    echo(f"  {GENAI_HINT}")


def _until_interrupted(server: LoopbackMlflowServer) -> None:
    while server.running:
        time.sleep(POLL_S)
    raise OrchestratorError(f"the MLflow UI server exited:\n{server.log_tail()}")
