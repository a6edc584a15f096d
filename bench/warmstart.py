"""Warm start: time until the searcher's first suggestion with 1,000 / 5,000 / 10,000 finished trials.

A study with n finished trials is put into a real ``mlflow server``, laid out as the
orchestrator writes them (child runs tagged ``orchestrator.kind=trial`` with study, version, space hash,
trial id and config tags, the per-epoch history tag of an ASHA study's trial, flattened params, ``loss`` /
``best_loss`` metrics). Then, timed stage by stage:

* from MLflow: ``MlflowStore.trials`` (over HTTP) -> ``carry`` -> ``HyperoptSearcher(...)`` -> first ``suggest``;
* from a Parquet ledger: ``ledger.trials_with_ledger`` (ledger + newer runs from the server) -> same;
* from the server alone with the ledger artifact (no ``--ledger``): the previous search's end left the study as
  ``ledger/trials.parquet`` on its run; ``ledger.trials_with_ledger(store, study, None)`` finds the newest one,
  downloads it over HTTP and reads the runs that ended after it -> same; and the cost of a search's end writing
  the next artifact (``ledger.write_artifact``: read the newest ledger + newer runs, upload);
* the hyperopt way: ``generate_trials_to_calculate`` + ``fmin`` replaying the stored losses, then one TPE
  suggestion (measured directly at every size);
* TPE suggestion latency (median of 20 ``suggest`` + ``on_trial_complete``) at 1k / 5k / 10k prior trials.

Two servers, measured in one run, one after the other: a laptop's (``mlflow server`` on a SQLite file,
``orchestrator.tracking.server``) and the team's (``orchestrator.tracking.team_server``: PostgreSQL, artifacts proxied
to moto's S3, basic-auth logins; the benchmark logs in as the admin). ``--stores`` picks them.

Filling MLflow: the first trials of each study go through ``MlflowStore`` exactly as the orchestrator's
logger calls it (create_run + log_batch + end_run), both in-process on the database and over HTTP, and
their cost per run is reported; the rest are cloned from the first such run with one SQL transaction through
SQLAlchemy, on either database (same tables, same columns, new ids and values), because the API path costs
20-170 ms per run here.

    python -m bench.warmstart --quick     # 1k and 5k from MLflow, 10k from the ledger and the artifact only
    python -m bench.warmstart             # 1k / 5k / 10k everywhere
    python -m bench.warmstart --quick --stores postgresql   # the team's server alone
"""

from __future__ import annotations

import json
import math
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench import common
from bench.spacetools import make_version, sample_config
from orchestrator.engine.backends.hyperopt import encode, labels, to_hyperopt
from orchestrator.spaces import StudyVersion, flatten
from orchestrator.tracking import ledger, schema
from orchestrator.tracking.mlflow_store import MlflowStore, TrialRow, _param_text, history_tag
from orchestrator.tracking.server import LoopbackMlflowServer
from orchestrator.tracking.team_server import TeamStack

# 8 searched parameters, two choices, one conditional (the shape of design.md section 6)
PARAMS: dict[str, Any] = {
    "x": {"uniform": [-5.0, 10.0]},
    "y": {"uniform": [0.0, 15.0]},
    "dropout": {"uniform": [0.0, 0.5]},
    "lr": {"loguniform": [1.0e-4, 1.0]},
    "depth": {"int": [2, 8]},
    "width": {"qloguniform": [16, 256, 16]},
    "activation": {"choice": ["relu", "tanh", "gelu"]},
    "optimizer": {"choice": [{"name": "adam"}, {"name": "sgd", "momentum": {"uniform": [0.5, 0.99]}}]},
}
GOAL_S = 10.0  # 10,000 carried trials ready in under 10 s
# the warm-start paths measured, as ``out["studies"][n]`` keys and as the report names them
PATHS = {"mlflow": "mlflow (runs only)", "ledger": "ledger (--ledger)", "artifact": "mlflow + ledger artifact"}
LATENCY_SUGGESTIONS = 20


def loss_of(config: dict[str, Any]) -> float:
    """Branin in (x, y) plus smooth terms in the others: any deterministic function will do here."""
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    x, y = config["x"], config["y"]
    branin = (y - b * x**2 + c * x - 6) ** 2 + 10 * (1 - t) * math.cos(x) + 10
    return branin + (math.log10(config["lr"]) + 2) ** 2 + 0.1 * config["depth"] + config["dropout"]


def history_of(version: StudyVersion, config: dict[str, Any]) -> dict[int, float]:
    """The per-epoch losses a trial is tagged with: ``max_epochs`` of them, falling to ``loss_of(config)``."""
    epochs = version.schedule.max_epochs
    return {epoch: loss_of(config) * (2 - epoch / epochs) for epoch in range(1, epochs + 1)}


def study_version(n: int) -> StudyVersion:
    return make_version(f"warmstart_{n}", PARAMS, search={"trials": 20, "startup_trials": 10})


# --------------------------------------------------------------------------- filling MLflow


def trial_tags(version: StudyVersion, parent: str, i: int, config: dict[str, Any]) -> dict[str, str]:
    """The tags ``MlflowTrialCallback`` writes on a child run (creation + first result + close)."""
    tid = f"bench_{i:05d}"
    return {
        schema.PARENT: parent,
        schema.KIND: schema.TRIAL_RUN,
        schema.STUDY: version.study,
        schema.VERSION: str(version.version),
        schema.HASH: version.content_hash,
        schema.TRIAL_ID: tid,
        schema.CONFIG: json.dumps(config, sort_keys=True),
        schema.TRAINABLE: version.trainable,
        schema.SEED: str(i),
        schema.SUGGESTED_BY: "tpe",
        schema.NODE_ID: "0" * 56,
        schema.GPU_IDS: "",
        schema.STATUS: "FINISHED",
        schema.METRIC_HISTORY: history_tag("loss", history_of(version, config)) or "",
    }


def run_name(version: StudyVersion, i: int) -> str:
    return f"{version.study}-v{version.version}-bench_{i:05d}"


def log_like_orchestrator(
    store: MlflowStore, exp: str, parent: str, version: StudyVersion, i: int, config: dict[str, Any]
) -> str:
    """One trial through the same ``MlflowStore`` calls the async logger makes: open, log, close."""
    tags = trial_tags(version, parent, i, config)
    close_tags = {schema.STATUS: tags.pop(schema.STATUS)}
    run = store.create_run(exp, run_name(version, i), tags, flatten(config))
    now = int(time.time() * 1000)
    loss = loss_of(config)
    store.log_batch(run, metrics=[("loss", loss, now, 1), ("best_loss", loss, now, 1)])
    store.log_batch(run, tags=close_tags)
    store.end_run(run, "FINISHED")
    return run


def per_run_ms(fill: Callable[[int], Any], indices: Sequence[int]) -> float:
    t0 = time.perf_counter()
    for i in indices:
        fill(i)
    return (time.perf_counter() - t0) / max(1, len(indices)) * 1000


@dataclass
class Template:
    """The rows MLflow wrote for one trial run, per table, with their column names."""

    run_id: str
    rows: dict[str, tuple[list[str], list[tuple[Any, ...]]]]

    @classmethod
    def read(cls, con: Any, run_id: str) -> Template:
        """``con``: a SQLAlchemy connection to the store's database (SQLite or PostgreSQL)."""
        from sqlalchemy import text

        rows = {}
        for table in ("runs", "tags", "params", "metrics", "latest_metrics"):
            result = con.execute(text(f"SELECT * FROM {table} WHERE run_uuid = :run"), {"run": run_id})
            rows[table] = (list(result.keys()), [tuple(r) for r in result.fetchall()])
        return cls(run_id, rows)

    def first(self, table: str) -> dict[str, Any]:
        columns, rows = self.rows[table]
        return dict(zip(columns, rows[0], strict=True))


def bulk_clone(
    store_uri: str,
    template_run: str,
    version: StudyVersion,
    parent: str,
    configs: Sequence[dict[str, Any]],
    first_index: int,
    end_ms: int,
) -> float:
    """Insert one finished trial run per config by cloning ``template_run``'s rows in the database ``store_uri`` (the
    server's backend store: SQLite or PostgreSQL), in one transaction; returns seconds."""
    from sqlalchemy import create_engine, text

    t0 = time.perf_counter()
    engine = create_engine(store_uri)
    try:
        with engine.begin() as con:
            tpl = Template.read(con, template_run)
            batches: dict[str, list[dict[str, Any]]] = {t: [] for t in tpl.rows}
            run_row, tag_row, param_row = tpl.first("runs"), tpl.first("tags"), tpl.first("params")
            metric_row, latest_row = tpl.first("metrics"), tpl.first("latest_metrics")
            system_tags = {k: v for k, v in _pairs(tpl, "tags") if k.startswith("mlflow.") and k != schema.PARENT}
            for j, config in enumerate(configs):
                i = first_index + j
                rid, name, end = uuid.uuid4().hex, run_name(version, i), end_ms - (len(configs) - j) * 10
                batches["runs"].append(
                    run_row
                    | {
                        "run_uuid": rid,
                        "name": name,
                        "start_time": end - 1000,
                        "end_time": end,
                        "artifact_uri": str(run_row["artifact_uri"]).replace(template_run, rid),
                    }
                )
                tags = system_tags | {"mlflow.runName": name} | trial_tags(version, parent, i, config)
                batches["tags"] += [tag_row | {"key": k, "value": v, "run_uuid": rid} for k, v in tags.items()]
                batches["params"] += [
                    param_row | {"key": k, "value": _param_text(v), "run_uuid": rid} for k, v in flatten(config).items()
                ]
                loss = loss_of(config)
                for key in ("loss", "best_loss"):
                    metric = {"key": key, "value": loss, "timestamp": end, "step": 1, "is_nan": False, "run_uuid": rid}
                    batches["metrics"].append(metric_row | metric)
                    batches["latest_metrics"].append(latest_row | metric)
            quote = engine.dialect.identifier_preparer.quote
            for table, rows in batches.items():
                columns = tpl.rows[table][0]
                names = ", ".join(quote(c) for c in columns)
                values = ", ".join(f":c{k}" for k in range(len(columns)))
                params = [{f"c{k}": r[c] for k, c in enumerate(columns)} for r in rows]
                con.execute(text(f"INSERT INTO {table} ({names}) VALUES ({values})"), params)
    finally:
        engine.dispose()
    return time.perf_counter() - t0


def _pairs(tpl: Template, table: str) -> list[tuple[str, str]]:
    columns, rows = tpl.rows[table]
    k, v = columns.index("key"), columns.index("value")
    return [(r[k], r[v]) for r in rows]


@dataclass
class Server:
    """A running server as the benchmark uses it: ``uri`` for its clients (with the admin's login where it has
    logins), ``backend_store_uri`` for reading and writing its database directly."""

    store: str  # "sqlite" or "postgresql"
    uri: str
    backend_store_uri: str
    startup_s: float


STORES = ("sqlite", "postgresql")


@contextmanager
def running_server(store: str, root: Path) -> Iterator[Server]:
    """The laptop's server (``sqlite``) or the team's (``postgresql``: PostgreSQL, moto's S3, logins), in ``root``."""
    if store == "sqlite":
        with LoopbackMlflowServer(root / store) as server:
            yield Server(store, server.uri, server.backend_store_uri, server.startup_s)
        return
    # PostgreSQL runs as the 'postgres' user when this is root: its folder must be one that user can enter
    with tempfile.TemporaryDirectory(prefix="bench-warmstart-pg-") as pg:
        Path(pg).chmod(0o711)
        with TeamStack(root / store, postgres_folder=Path(pg) / "cluster", durable=False) as stack:
            yield Server(store, stack.admin_uri, stack.server.backend_store_uri, stack.startup_s)


@dataclass
class Study:
    version: StudyVersion
    configs: list[dict[str, Any]]
    fill: dict[str, float]
    parent: str  # the search run the trials belong to


def fill_study(server: Server, n: int, rng: np.random.Generator, api_runs: int, http_runs: int) -> Study:
    """A study of ``n`` finished trials in the server's store; the fill's timings in ``Study.fill``."""
    version = study_version(n)
    configs = [sample_config(version.params, rng) for _ in range(n)]
    sql_store, http_store = MlflowStore(server.backend_store_uri), MlflowStore(server.uri)
    exp = http_store.experiment_id(version.study)  # through the server: its artifacts are the server's (proxied)
    assert exp is not None
    search_tags = {schema.KIND: schema.SEARCH_RUN, schema.STUDY: version.study}
    parent = sql_store.create_run(exp, f"{version.label} bench", search_tags, {})
    api = range(min(api_runs, n))
    http = range(len(api), min(len(api) + http_runs, n))

    def fill_with(store: MlflowStore) -> Callable[[int], str]:
        return lambda i: log_like_orchestrator(store, exp, parent, version, i, configs[i])

    with common.swallow_stdout():
        api_ms = per_run_ms(fill_with(sql_store), api)
        http_ms = per_run_ms(fill_with(http_store), http)
    template = sql_store.trials(version.study)[0].run_id
    start = len(api) + len(http)
    # cloned runs end before the artifact's as-of time (a search's end): only the API runs are newer than it
    created_ms = int(time.time() * 1000) - ledger.CLOCK_SKEW_MS - 5000
    bulk_s = bulk_clone(server.backend_store_uri, template, version, parent, configs[start:], start, created_ms)
    fill = {
        "api_inprocess_ms_per_run": api_ms,
        "api_http_ms_per_run": http_ms if len(http) else None,
        "bulk_s": bulk_s,
        "bulk_runs": n - start,
        "api_runs": len(api),
        "http_runs": len(http),
    }
    return Study(version, configs, fill, parent)


def expected_rows(study: Study) -> list[TrialRow]:
    """The rows ``MlflowStore.trials`` gives for the study (checked against the store where it is read)."""
    v, now = study.version, int(time.time() * 1000)
    return [
        TrialRow(
            run_id=uuid.uuid4().hex,
            study=v.study,
            version=v.version,
            space_hash=v.content_hash,
            trial_id=f"bench_{i:05d}",
            status="FINISHED",
            config=c,
            metrics={"loss": loss_of(c), "best_loss": loss_of(c)},
            start_time=now - 1000,
            end_time=now,
            parent_run_id="",
            history={"loss": history_of(v, c)},
        )
        for i, c in enumerate(study.configs)
    ]


def check_rows(rows: Sequence[TrialRow], study: Study) -> None:
    """The store gave back every trial, finished, with the config and loss written (cloned rows included)."""
    if len(rows) != len(study.configs):
        raise RuntimeError(f"{study.version.study}: expected {len(study.configs)} trials, the store has {len(rows)}")
    by_id = {r.trial_id: r for r in rows}
    expected = expected_rows(study)
    for i in (0, len(rows) // 2, len(rows) - 1):
        got, want = by_id[f"bench_{i:05d}"], expected[i]
        same = (got.status, got.version, got.config, got.space_hash, got.history) == (
            want.status,
            want.version,
            want.config,
            want.space_hash,
            want.history,
        )
        if not same or not all(math.isclose(got.metrics[k], v) for k, v in want.metrics.items()):
            raise RuntimeError(f"trial {i} reads back wrong: {got}")


class PageTimer:
    """Wraps ``MlflowClient`` to time each ``search_runs`` page (the server answers one page per request)."""

    def __init__(self, client: Any):
        self._client = client
        self.pages: list[float] = []

    def search_runs(self, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return self._client.search_runs(*args, **kwargs)
        finally:
            self.pages.append(time.perf_counter() - t0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


# --------------------------------------------------------------------------- the measured paths


def searcher_stages(rows: Sequence[TrialRow], version: StudyVersion) -> dict[str, float]:
    """carry -> HyperoptSearcher -> first suggestion, each timed (rows already read)."""
    from orchestrator.engine.searchers.hyperopt import HyperoptSearcher
    from orchestrator.spaces.carry import carry

    t: dict[str, float] = {}
    t0 = time.perf_counter()
    report = carry((r.prior(version.metric.name) for r in rows), version)
    t["carry_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    searcher = HyperoptSearcher(version, report.carried, seed=0)
    t["build_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    config = searcher.suggest("first")
    t["first_suggest_s"] = time.perf_counter() - t0
    if len(report.carried) != len(rows) or searcher.suggested_by["first"] != "tpe" or "x" not in config:
        raise RuntimeError(f"warm start went wrong: {report.summary()}")
    t["carried"] = len(report.carried)
    return t


def _total(stages: dict[str, float]) -> dict[str, float]:
    stages["total_s"] = sum(stages[k] for k in ("read_s", "carry_s", "build_s", "first_suggest_s"))
    return stages


def first_request_s(uri: str) -> float:
    """The first ``search_runs`` a freshly started server answers is much slower than the next ones."""
    store = MlflowStore(uri)
    t0 = time.perf_counter()
    store.trials("no_such_study_yet")  # creates nothing: experiment lookup, then an empty answer
    store.client.search_runs(["0"], max_results=1)
    return time.perf_counter() - t0


def from_store(uri: str, study: Study) -> tuple[dict[str, float], list[TrialRow]]:
    """Read the study from the server (timed per page), then warm-start from it."""
    store = MlflowStore(uri)
    pages = PageTimer(store.client)
    store.client = pages
    store.client.search_runs([str(store.experiment_id(study.version.study))], max_results=1)  # warm the server
    pages.pages.clear()
    t0 = time.perf_counter()
    rows = store.trials(study.version.study)
    read_s = time.perf_counter() - t0
    check_rows(rows, study)
    stages = _total({"read_s": read_s, **searcher_stages(rows, study.version)})
    stages["pages"] = len(pages.pages)
    stages["slowest_page_s"] = max(pages.pages)
    return stages, rows


def from_ledger(uri: str, version: StudyVersion, rows: Sequence[TrialRow], path: Path) -> dict[str, float]:
    """Write the ledger (as ``orchestrator trials export`` would), then warm-start from it plus newer runs."""
    t0 = time.perf_counter()
    ledger.write(rows, path, metric=version.metric.name)
    write_s = time.perf_counter() - t0
    store = MlflowStore(uri)
    t0 = time.perf_counter()
    merged, _ = ledger.trials_with_ledger(store, version.study, path)
    stages = _total({"read_s": time.perf_counter() - t0, **searcher_stages(merged, version)})
    stages["ledger_write_s"] = write_s
    stages["ledger_mb"] = path.stat().st_size / 1e6
    return stages


def from_artifact(server: Server, study: Study) -> dict[str, float]:
    """Warm-start from the server alone: the newest ledger artifact plus the runs that ended after it.

    The previous search's end is simulated by uploading the study (read in-process from the SQLite file) as the
    artifact of its run, as of that read; then the next search's end writes the artifact the product's way.
    """
    store = MlflowStore(server.uri)
    as_of = int(time.time() * 1000) - ledger.CLOCK_SKEW_MS
    ledger.upload(store, study.parent, MlflowStore(server.backend_store_uri).trials(study.version.study), as_of)
    t0 = time.perf_counter()
    rows, source = ledger.trials_with_ledger(store, study.version.study, None)
    read_s = time.perf_counter() - t0
    check_rows(rows, study)
    if not source.startswith(f"ledger artifact of run {study.parent} "):
        raise RuntimeError(f"warm start did not read the ledger artifact: {source}")
    stages = _total({"read_s": read_s, **searcher_stages(rows, study.version)})
    t0 = time.perf_counter()
    ledger.write_artifact(store, study.version.study, study.parent)
    stages["artifact_write_s"] = time.perf_counter() - t0
    stages["newer_runs"] = len(store.trials(study.version.study, ended_after_ms=as_of))
    return stages


def hyperopt_replay(version: StudyVersion, configs: Sequence[dict[str, Any]]) -> float:
    """hyperopt's own way: ``generate_trials_to_calculate`` then ``fmin`` re-evaluating (looking up) each stored
    loss, and one more TPE suggestion. Conditional labels need filling in by hand, or TPE raises KeyError."""
    from hyperopt import fmin, tpe
    from hyperopt.fmin import generate_trials_to_calculate

    space = version.params
    points = [{k: v[0] for k, v in encode(space, c).items() if v} for c in configs]
    losses = iter([loss_of(c) for c in configs])  # losses are > 0 here: ``or`` only catches the end
    t0 = time.perf_counter()
    trials = generate_trials_to_calculate(points)
    every = labels(space)
    for doc in trials._dynamic_trials:  # inactive conditional labels must be present (as [])
        for label in every:
            doc["misc"]["idxs"].setdefault(label, [])
            doc["misc"]["vals"].setdefault(label, [])
    trials.refresh()
    objective = lambda config: next(losses, None) or loss_of(config)  # noqa: E731
    fmin(
        objective,
        to_hyperopt(space),
        algo=tpe.suggest,
        max_evals=len(configs) + 1,
        trials=trials,
        rstate=np.random.default_rng(0),
        show_progressbar=False,
    )
    elapsed = time.perf_counter() - t0
    if len(trials.trials) != len(configs) + 1:
        raise RuntimeError(f"replay made {len(trials.trials)} trials, expected {len(configs) + 1}")
    return elapsed


def tpe_latency_ms(version: StudyVersion, prior: list[tuple[dict[str, Any], float]], k: int) -> float:
    """Median time of one ``suggest`` (with ``on_trial_complete`` in between) over ``k`` suggestions."""
    from orchestrator.engine.searchers.hyperopt import HyperoptSearcher

    searcher = HyperoptSearcher(version, prior, seed=1)
    times = []
    for j in range(k):
        t0 = time.perf_counter()
        config = searcher.suggest(f"t{j}")
        times.append(time.perf_counter() - t0)
        searcher.on_trial_complete(f"t{j}", {"loss": loss_of(config)})
    return statistics.median(times) * 1000


def latency_table(rng: np.random.Generator, k: int) -> dict[str, float]:
    version = study_version(0)
    result = {}
    for n in (1000, 5000, 10000):
        prior = [(c, loss_of(c)) for c in (sample_config(version.params, rng) for _ in range(n))]
        result[str(n)] = tpe_latency_ms(version, prior, k)
    return result


# --------------------------------------------------------------------------- driver


def measure_size(
    server: Server,
    n: int,
    from_mlflow: bool,
    rng: np.random.Generator,
    api_runs: tuple[int, int],
    root: Path,
) -> dict[str, Any]:
    print(f"study of {n:,} trials: filling ...", flush=True)
    study = fill_study(server, n, rng, *api_runs)
    res: dict[str, Any] = {"fill": study.fill}
    rows: Sequence[TrialRow] = expected_rows(study)
    if from_mlflow:
        print("  reading it back from the server ...", flush=True)
        res["mlflow"], rows = from_store(server.uri, study)
    res["ledger"] = from_ledger(server.uri, study.version, rows, root / f"ledger_{n}.parquet")
    res["artifact"] = from_artifact(server, study)
    res["hyperopt_replay_s"] = hyperopt_replay(study.version, study.configs)
    return res


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = common.parser(__doc__)
    p.add_argument("--sizes", type=int, nargs="+", help="study sizes read from MLflow (default 1k 5k [10k])")
    p.add_argument("--ledger-only", type=int, nargs="*", help="sizes warm-started from the ledger only")
    p.add_argument("--stores", nargs="+", choices=STORES, default=list(STORES), help="servers to measure (both)")
    args = common.parse_args(p, argv)
    # the orchestrator reads with a 20 s HTTP timeout; pages of 1,000 runs keep each request well inside it
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "600")
    from orchestrator.engine.searchers import hyperopt as _  # noqa: F401  (ray.tune's import time is not warm-start time)

    sizes = args.sizes or ([1000, 5000] if args.quick else [1000, 5000, 10000])
    ledger_only = args.ledger_only if args.ledger_only is not None else ([10000] if args.quick else [])
    api_runs = (20, 5) if args.quick else (100, 20)
    out: dict[str, Any] = {
        "sizes": sizes,
        "ledger_only_sizes": ledger_only,
        "stores": {},
        "http_timeout_s": float(os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"]),
    }
    for store in args.stores:
        rng = np.random.default_rng(0)  # the same studies on each server
        print(f"== {store} store", flush=True)
        with common.scratch_dir("warmstart") as root, running_server(store, root) as server:
            measured: dict[str, Any] = {"server_startup_s": server.startup_s, "studies": {}}
            measured["first_search_on_fresh_server_s"] = first_request_s(server.uri)
            for n in sorted({*sizes, *ledger_only}):
                measured["studies"][str(n)] = measure_size(server, n, n in sizes, rng, api_runs, root)
        out["stores"][store] = measured
    print("TPE suggestion latency ...", flush=True)
    out["latency_suggestions"] = 10 if args.quick else LATENCY_SUGGESTIONS
    out["tpe_latency_ms"] = latency_table(np.random.default_rng(0), out["latency_suggestions"])
    out["goal"] = {store: goal(measured) for store, measured in out["stores"].items()}
    report(out)
    return common.finish("warmstart", args.quick, out, args.out)


def goal(measured: dict[str, Any]) -> dict[str, Any]:
    ten = measured["studies"].get("10000", {})
    figures = {path: ten[path]["total_s"] for path in PATHS if path in ten}
    return {"target_s": GOAL_S, "10k_ready_s": figures, "met": {k: v < GOAL_S for k, v in figures.items()}}


def report(out: dict[str, Any]) -> None:
    rows = []
    for n in sorted({int(n) for measured in out["stores"].values() for n in measured["studies"]}):
        for path, shown in PATHS.items():
            for store, measured in out["stores"].items():
                res = measured["studies"].get(str(n), {})
                if path not in res:
                    continue
                s = res[path]
                searcher = s["carry_s"] + s["build_s"] + s["first_suggest_s"]
                rows.append(
                    [
                        n,
                        shown,
                        store,
                        s["read_s"],
                        s["carry_s"],
                        s["build_s"],
                        s["first_suggest_s"],
                        s["total_s"],
                        searcher,
                        res["hyperopt_replay_s"],
                        res["hyperopt_replay_s"] / searcher,
                    ]
                )
    common.print_table(
        [
            "trials",
            "from",
            "store",
            "read s",
            "carry s",
            "build s",
            "1st suggest s",
            "total s",
            "carry+build+suggest s",
            "hyperopt replay s",
            "replay / ours",
        ],
        rows,
        "Time to the first suggestion (warm start), real mlflow server over HTTP, each store beside the other; the "
        "hyperopt replay starts from trials in memory, so compare it with carry+build+suggest",
    )
    pages = [
        [int(n), store, r["mlflow"]["pages"], r["mlflow"]["slowest_page_s"], r["mlflow"]["slowest_page_s"] < 20]
        for store, measured in out["stores"].items()
        for n, r in measured["studies"].items()
        if "mlflow" in r
    ]
    common.print_table(
        ["trials", "store", "search_runs pages", "slowest page s", "fits the default 20 s timeout"],
        pages,
        "MlflowStore.trials: pages of 1,000 runs, one HTTP request each",
    )
    fills = [
        [
            int(n),
            store,
            r["fill"]["api_inprocess_ms_per_run"],
            r["fill"]["api_http_ms_per_run"],
            r["fill"]["bulk_runs"],
            r["fill"]["bulk_s"],
            r["ledger"]["ledger_write_s"],
            r["ledger"]["ledger_mb"],
            r["artifact"]["newer_runs"],
            r["artifact"]["artifact_write_s"],
        ]
        for store, measured in out["stores"].items()
        for n, r in measured["studies"].items()
    ]
    common.print_table(
        [
            "trials",
            "store",
            "API ms/run (in-process)",
            "API ms/run (HTTP)",
            "cloned runs",
            "clone s",
            "ledger write s",
            "ledger MB",
            "runs after the artifact",
            "search end: artifact write s",
        ],
        fills,
        "Making the studies (MlflowStore calls as the orchestrator logs; the rest cloned in SQL)",
    )
    for store, measured in out["stores"].items():
        print(
            f"\n{store} server: started in {measured['server_startup_s']:.1f} s; its first search answered in "
            f"{measured['first_search_on_fresh_server_s']:.2f} s (timed reads above come after one warm-up request)"
        )
    lat = out["tpe_latency_ms"]
    common.print_table(
        ["prior trials", f"TPE suggest ms (median of {out['latency_suggestions']})"],
        [[int(n), v] for n, v in lat.items()],
    )
    for store, g in out["goal"].items():
        parts = [f"{k} {v:.2f} s ({'met' if g['met'][k] else 'NOT met'})" for k, v in g["10k_ready_s"].items()]
        print(
            f"\ngoal ({store}): 10,000 carried trials ready in < {g['target_s']:.0f} s: "
            + (", ".join(parts) or "not measured")
        )


if __name__ == "__main__":
    main()
