"""The Parquet ledger: one row per trial, written with pyarrow.

``orchestrator trials export STUDY --out trials.parquet`` writes it, and every search that finishes
writes one as the artifact ``ledger/trials.parquet`` of its run (``write_artifact``). Warm start reads
a ledger as a fast path for long studies: the hand-given ``--ledger`` file, else the study's newest
ledger artifact, plus only the trials that ended after the ledger's as-of time, read from the store
(a run in both is taken from the store: a stale ledger is never wrong, just slower).

Each row keeps the trial's per-epoch history (``history``: metric -> epoch -> value, from the run's
``METRIC_HISTORY`` tag), so a warm start from a ledger is as fidelity-aware as one from the store. A ledger
written before that column existed still reads, its trials without history.
"""

from __future__ import annotations

import itertools
import json
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.errors import OrchestratorError, first_line
from orchestrator.paths import check_output_file

from .mlflow_store import History, MlflowStore, TrialRow
from .schema import LEDGER_ARTIFACT, LEDGER_AS_OF, LEDGER_ERROR, best_metric

T = TypeVar("T")

SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("study", pa.string()),
        ("version", pa.int64()),
        ("space_hash", pa.string()),
        ("trial_id", pa.string()),
        ("status", pa.string()),
        ("params", pa.string()),  # nested values as JSON: exact types survive
        ("metrics", pa.map_(pa.string(), pa.float64())),
        ("start_time", pa.timestamp("ms", tz="UTC")),
        ("end_time", pa.timestamp("ms", tz="UTC")),
        ("duration_s", pa.float64()),
        ("parent_run_id", pa.string()),
        ("history", pa.map_(pa.string(), pa.map_(pa.int64(), pa.float64()))),  # metric -> epoch -> value
    ]
)
OPTIONAL_COLUMNS = frozenset({"history"})  # absent from older ledgers; their rows read without it
AS_OF = b"orchestrator.as_of_ms"
# A ledger's as-of time is set this far before the store was read, so that a run ended by a driver whose clock
# is a little behind still ends after it; the overlap is read twice and deduplicated by run id.
CLOCK_SKEW_MS = 60_000
UPLOAD_RETRY_S = 1.0  # between the two tries of a ledger artifact's upload


def table(rows: Iterable[TrialRow], metric: str | None = None, mode: str = "max") -> pa.Table:
    """Rows as an Arrow table; with ``metric``, also ``final_<metric>`` and ``best_<metric>`` columns."""
    rows = list(rows)
    cols: dict[str, list[Any]] = {name: [] for name in SCHEMA.names}
    for r in rows:
        cols["run_id"].append(r.run_id)
        cols["study"].append(r.study)
        cols["version"].append(r.version)
        cols["space_hash"].append(r.space_hash)
        cols["trial_id"].append(r.trial_id)
        cols["status"].append(r.status)
        cols["params"].append(json.dumps(r.config, sort_keys=True))
        cols["metrics"].append(list(r.metrics.items()))
        cols["start_time"].append(r.start_time)
        cols["end_time"].append(r.end_time)
        cols["duration_s"].append((r.end_time - r.start_time) / 1000 if r.end_time and r.start_time else None)
        cols["parent_run_id"].append(r.parent_run_id)
        cols["history"].append([(name, list(h.items())) for name, h in r.history.items()])
    t = pa.table(cols, schema=SCHEMA)
    if metric:
        best_key = best_metric(metric)
        t = t.append_column(f"final_{metric}", pa.array([r.metrics.get(metric) for r in rows], pa.float64()))
        t = t.append_column(
            best_key, pa.array([r.metrics.get(best_key, r.metrics.get(metric)) for r in rows], pa.float64())
        )
    return t


def write(rows: Iterable[TrialRow], out: Path, metric: str | None = None, as_of_ms: int | None = None) -> int:
    """Write the ledger atomically; ``as_of_ms`` records when the store was read."""
    check_output_file(out)
    t = table(rows, metric)
    as_of = as_of_ms if as_of_ms is not None else int(time.time() * 1000)
    t = t.replace_schema_metadata({**(t.schema.metadata or {}), AS_OF: str(as_of).encode()})
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    pq.write_table(t, tmp)
    tmp.replace(out)
    return t.num_rows


def check(path: Path) -> None:
    """``OrchestratorError`` unless ``path`` is a trials export (its schema read, not its rows): a run checks its
    ``--ledger`` before it starts anything."""
    _require_columns(path, _parquet(path, pq.read_schema).names)


def _parquet(path: Path, reader: Callable[[Path], T]) -> T:
    """``reader(path)``, or ``OrchestratorError`` naming the file when it is missing, a folder or not Parquet."""
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise OrchestratorError(
            f"ledger {path} {what}; write one with `orchestrator trials export STUDY --out "
            f"{path}` or leave out --ledger"
        )
    try:
        return reader(path)
    except (OSError, pa.ArrowException) as e:
        raise OrchestratorError(f"ledger {path} is not a Parquet trials export: {first_line(e)}") from None


def _require_columns(path: Path, names: Sequence[str]) -> None:
    missing = [name for name in SCHEMA.names if name not in names and name not in OPTIONAL_COLUMNS]
    if missing:
        raise OrchestratorError(f"ledger {path} is not a trials export: no column {', '.join(missing)}")


def read(path: Path) -> tuple[list[TrialRow], int]:
    """Rows and the time (ms) the store was read for them; ``OrchestratorError`` for a file that is not a ledger
    (the checks of ``check`` on the table read once)."""
    t = _parquet(path, pq.read_table)
    _require_columns(path, t.schema.names)
    meta = t.schema.metadata or {}
    as_of = int(meta.get(AS_OF, b"0"))
    rows = []
    d = t.select([name for name in SCHEMA.names if name not in OPTIONAL_COLUMNS]).to_pydict()
    histories = _histories(t.column("history")) if "history" in t.schema.names else [{} for _ in range(t.num_rows)]
    for i in range(t.num_rows):
        start, end = d["start_time"][i], d["end_time"][i]
        rows.append(
            TrialRow(
                run_id=d["run_id"][i],
                study=d["study"][i],
                version=d["version"][i],
                space_hash=d["space_hash"][i],
                trial_id=d["trial_id"][i],
                status=d["status"][i],
                config=json.loads(d["params"][i]),
                metrics=dict(d["metrics"][i]),
                start_time=int(start.timestamp() * 1000) if start else None,
                end_time=int(end.timestamp() * 1000) if end else None,
                parent_run_id=d["parent_run_id"][i],
                history=histories[i],
            )
        )
    return rows, as_of


def _histories(column: pa.ChunkedArray) -> list[dict[str, History]]:
    """The ``history`` column as ``{metric: {epoch: value}}`` per row, converted from its flattened child arrays
    (half the time of a Python object per map entry; 10,000 trials of 100 epochs are a million entries)."""
    out: list[dict[str, History]] = []
    for chunk in column.chunks:
        if chunk.null_count:  # not written by ``table``; the plain conversion handles missing cells
            out += [{name: dict(h) for name, h in cell or ()} for cell in chunk.to_pylist()]
            continue
        per_metric = chunk.values  # the offsets index the unsliced children
        names, inner = per_metric.field(0).to_pylist(), per_metric.field(1)
        bounds = inner.offsets.to_pylist()
        epochs, values = inner.values.field(0).to_pylist(), inner.values.field(1).to_pylist()
        metric_histories = [dict(zip(epochs[a:b], values[a:b], strict=True)) for a, b in itertools.pairwise(bounds)]
        for start, end in itertools.pairwise(chunk.offsets.to_pylist()):
            out.append({names[j]: metric_histories[j] for j in range(start, end)})
    return out


def trials_with_ledger(store: MlflowStore, study: str, ledger: Path | None) -> tuple[list[TrialRow], str]:
    """Every trial of ``study`` and where it was read from.

    From the ``ledger`` file when given, else from the study's newest ledger artifact, else from the store;
    a ledger is topped up with the runs that ended after its as-of time. An artifact that cannot be read
    is named in the source and the store is read instead.
    """
    if ledger is not None:
        rows, as_of = read(ledger)
        return _topped_up(store, study, rows, as_of, f"ledger {ledger}")
    newest = store.newest_ledger(study)
    if newest is None:
        return store.trials(study), "tracking store"
    run_id, as_of = newest
    try:
        with tempfile.TemporaryDirectory(prefix="orchestrator-ledger-") as tmp:
            rows, _ = read(store.download_artifact(run_id, LEDGER_ARTIFACT, Path(tmp)))
    except Exception as e:  # missing, corrupt, artifact store down: the runs themselves are the truth
        reason = f"ledger artifact of run {run_id} unreadable ({first_line(e)})"
        return store.trials(study), f"tracking store; {reason}"
    return _topped_up(store, study, rows, as_of, f"ledger artifact of run {run_id}")


def _topped_up(
    store: MlflowStore, study: str, rows: list[TrialRow], as_of: int, what: str
) -> tuple[list[TrialRow], str]:
    """The ledger's rows of ``study`` with every run that ended after ``as_of`` taken from the store instead."""
    rows = [r for r in rows if r.study == study]
    newer = store.trials(study, ended_after_ms=as_of)
    seen = {r.run_id for r in newer}
    merged = [r for r in rows if r.run_id not in seen] + newer
    return merged, f"{what} ({len(rows)} trials) + {len(newer)} newer runs from the store"


def write_artifact(store: MlflowStore, study: str, run_id: str) -> int:
    """Write every trial of ``study`` as of now as the ledger artifact of the run ``run_id``; returns the rows.

    Reads the newest ledger plus the runs that ended after it (as warm start does), so each search's end reads
    little more than its own trials.
    """
    as_of = int(time.time() * 1000) - CLOCK_SKEW_MS
    rows, _ = trials_with_ledger(store, study, None)
    return upload(store, run_id, rows, as_of)


def upload(store: MlflowStore, run_id: str, rows: Iterable[TrialRow], as_of_ms: int) -> int:
    """``rows`` (the study as of ``as_of_ms``) as the run's ledger artifact; the tag is set after the upload,
    so a tag always names a whole file.

    The upload is tried twice (``UPLOAD_RETRY_S`` apart: a connection the server dropped after an artifact store's
    outage fails the first try only); when both fail, the run gets ``LEDGER_ERROR`` (if the tracking server takes
    it) and the error is raised."""
    with tempfile.TemporaryDirectory(prefix="orchestrator-ledger-") as tmp:
        path = Path(tmp) / Path(LEDGER_ARTIFACT).name
        n = write(rows, path, as_of_ms=as_of_ms)
        try:
            _twice(lambda: store.log_artifact(run_id, path, str(Path(LEDGER_ARTIFACT).parent)))
        except Exception as e:
            with suppress(Exception):  # the tracking server is down too: the caller reports the upload's error
                store.log_batch(run_id, tags={LEDGER_ERROR: first_line(e)})
            raise
    store.log_batch(run_id, tags={LEDGER_AS_OF: str(as_of_ms)})
    return n


def _twice(call: Callable[[], object]) -> None:
    try:
        call()
    except Exception:
        time.sleep(UPLOAD_RETRY_S)
        call()
