"""The Parquet ledger: one row per trial, written with pyarrow.

``orchestrator trials export STUDY --out trials.parquet`` writes it; warm start reads it as
a fast path for long studies: rows from the ledger plus only the trials that ended after
the ledger was written, read from the store (so a stale ledger is never wrong, just slower).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.errors import OrchestratorError

from .mlflow_store import MlflowStore, TrialRow
from .schema import best_metric

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
    ]
)
AS_OF = b"orchestrator.as_of_ms"


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
    t = pa.table(cols, schema=SCHEMA)
    if metric:
        best_key = best_metric(metric)
        t = t.append_column(f"final_{metric}", pa.array([r.metrics.get(metric) for r in rows], pa.float64()))
        t = t.append_column(
            best_key, pa.array([r.metrics.get(best_key, r.metrics.get(metric)) for r in rows], pa.float64())
        )
    return t


def check_out_path(out: Path) -> None:
    """Raise ``OrchestratorError`` unless ``out`` can name the ledger file (not a folder, not under a file)."""
    if out.is_dir():
        raise OrchestratorError(f"{out} is a folder; name the file to write, such as {out / 'trials.parquet'}")
    blocker = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise OrchestratorError(f"cannot write {out}: {blocker} is a file, not a folder")


def write(rows: Iterable[TrialRow], out: Path, metric: str | None = None, as_of_ms: int | None = None) -> int:
    """Write the ledger atomically; ``as_of_ms`` records when the store was read."""
    check_out_path(out)
    t = table(rows, metric)
    as_of = as_of_ms if as_of_ms is not None else int(time.time() * 1000)
    t = t.replace_schema_metadata({**(t.schema.metadata or {}), AS_OF: str(as_of).encode()})
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    pq.write_table(t, tmp)
    tmp.replace(out)
    return t.num_rows


def read(path: Path) -> tuple[list[TrialRow], int]:
    """Rows and the time (ms) the store was read for them; ``OrchestratorError`` for a file that is not a ledger."""
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise OrchestratorError(f"ledger {path} {what}; write one with `orchestrator trials export STUDY --out "
                                f"{path}` or leave out --ledger")  # fmt: skip
    try:
        t = pq.read_table(path)
        missing = [name for name in SCHEMA.names if name not in t.schema.names]
    except (OSError, pa.ArrowException) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise OrchestratorError(f"ledger {path} is not a Parquet trials export: {reason}") from None
    if missing:
        raise OrchestratorError(f"ledger {path} is not a trials export: no column {', '.join(missing)}")
    meta = t.schema.metadata or {}
    as_of = int(meta.get(AS_OF, b"0"))
    rows = []
    d = t.select(SCHEMA.names).to_pydict()
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
            )
        )
    return rows, as_of


def trials_with_ledger(store: MlflowStore, study: str, ledger: Path | None) -> tuple[list[TrialRow], str]:
    """Every trial of ``study``: from the ledger plus newer runs when a ledger exists, else the store."""
    if ledger is not None:
        rows, as_of = read(ledger)
        rows = [r for r in rows if r.study == study]
        newer = store.trials(study, ended_after_ms=as_of)
        seen = {r.run_id for r in newer}
        merged = [r for r in rows if r.run_id not in seen] + newer
        return merged, f"ledger {ledger} ({len(rows)} trials) + {len(newer)} newer from the store"
    return store.trials(study), "tracking store"
