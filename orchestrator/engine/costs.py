"""Hardware costs of carried trials, computed from their configurations without training.

A version may name a cost (``params``, ``macs``, ``latency_ms``, ``latency_batch_ms``: ``trainables.costs``) as an
objective or a constraint that trials of an earlier version never reported. These depend on the configuration
only, so ``spaces.carry`` carries such trials with the value missing (``CarryReport.to_compute``) and
``fill_costs`` computes it before the search: each distinct configuration's network is built from the
configuration by its family (``TrainableSpec.network``) and measured as the shared loop measures a trial
(``trainables.measure.network_costs``), never trained.

Where: with a Ray session (``orchestrator run``), in Ray tasks with the trial's own resources
(``resources.cpu``/``gpu``), so latencies are measured on the kind of device the trials run on and the work
spreads over the cluster; without one (a script, a test), in a pool of local processes. The configurations are
split into chunks, one task each; a chunk's worker imports torch once. Results are kept per configuration for the
life of the process (``CACHE``): a grid of configurations is measured once however many trials share one, and a
resumed search or a second search from the same driver measures nothing again. Latencies are measured only when
the version names them (``Reporter.measure`` for trials, the missing names here).

A configuration whose costs cannot be computed (its family rejects it) drops its trials, counted by reason.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any

from orchestrator.spaces import StudyVersion
from orchestrator.spaces.carry import CarryReport
from orchestrator.spaces.secrets import with_fixed_values

CHUNK = 50  # configurations per task: one torch import per task, tasks enough to spread over a cluster
CACHE: dict[tuple[str, str, tuple[str, ...]], dict[str, float] | str] = {}  # (trainable, config, names) -> costs
Measure = Callable[[str, list[dict[str, Any]], tuple[str, ...], StudyVersion], list[dict[str, float] | str]]


def _key(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, default=str)


def fill_costs(report: CarryReport, version: StudyVersion, echo: Callable[[str], None] = print) -> float:
    """Compute the costs carried trials lack (``Outcome.missing``) from their configurations and put them in
    ``report.carried``; a trial whose costs cannot be computed moves to ``report.dropped``. Returns the seconds it
    took (0 when nothing was missing)."""
    todo = [i for i, trial in enumerate(report.carried) if len(trial) == 4 and trial[3].missing]
    if not todo:
        return 0.0
    start = time.perf_counter()
    wanted: dict[str, tuple[dict[str, Any], set[str]]] = {}  # config key -> (config, names)
    for i in todo:
        config = _trial_config(version, report.carried[i][0])
        entry = wanted.setdefault(_key(config), (config, set()))
        entry[1].update(report.carried[i][3].missing)
    names = tuple(sorted(set().union(*(n for _, n in wanted.values()))))
    costs = configuration_costs(version, [config for config, _ in wanted.values()], names)
    kept, errors = [], 0
    for i, trial in enumerate(report.carried):
        if i not in todo:
            kept.append(trial)
            continue
        values, loss, history, outcome = trial  # type: ignore[misc]
        measured = costs[_key(_trial_config(version, values))]
        if isinstance(measured, str):  # (``carried_from`` keeps counting it: a carried trial keeps no version)
            report.dropped[f"costs not computed ({measured})"] += 1
            errors += 1
            continue
        kept.append((values, loss, history, outcome.filled(measured)))
    report.carried[:] = kept
    seconds = time.perf_counter() - start
    dropped = f", {errors} dropped: their costs could not be computed" if errors else ""
    what = f"{len(wanted)} configurations ({len(todo)} carried trials)"
    echo(f"computed {', '.join(names)} of {what} in {seconds:.1f}s without training{dropped}")
    return seconds


def _trial_config(version: StudyVersion, values: dict[str, Any]) -> dict[str, Any]:
    """What a trial with ``values`` receives (fixed values back, seed 0: the network's shape does not depend on it),
    with the CPU threads a trial gets (``resources.cpu``, as Ray sets them) unless the space sets ``cpus``: latency is
    measured as a trial would see it, and the workers of a local pool do not fight over the cores."""
    config = with_fixed_values(version, version.trial_config(values))
    config.update(max_epochs=version.schedule.max_epochs, seed=0)
    config.setdefault("cpus", max(1, int(version.resources.cpu)))
    return config


def configuration_costs(
    version: StudyVersion, configs: Sequence[dict[str, Any]], names: tuple[str, ...], measure: Measure | None = None
) -> dict[str, dict[str, float] | str]:
    """Costs ``names`` of each configuration (by its key) for ``version``'s trainable: from ``CACHE``, else measured
    by ``measure`` (default: ``measure_in_ray`` in a Ray session, else ``measure_in_processes``) and cached."""
    trainable = version.trainable
    out: dict[str, dict[str, float] | str] = {}
    new: list[dict[str, Any]] = []
    for config in configs:
        key = _key(config)
        cached = CACHE.get((trainable, key, names))
        if cached is None:
            new.append(config)
        else:
            out[key] = cached
    if new:
        run = measure or _default_measure()
        for config, measured in zip(new, run(trainable, new, names, version), strict=True):
            out[_key(config)] = CACHE[(trainable, _key(config), names)] = measured
    return out


def _default_measure() -> Measure:
    import ray

    return measure_in_ray if ray.is_initialized() else measure_in_processes


def _chunks(configs: list[dict[str, Any]], parts: int) -> list[list[dict[str, Any]]]:
    size = max(1, min(CHUNK, math.ceil(len(configs) / max(parts, 1))))
    return [configs[i : i + size] for i in range(0, len(configs), size)]


def measure_in_ray(
    trainable: str, configs: list[dict[str, Any]], names: tuple[str, ...], version: StudyVersion
) -> list[dict[str, float] | str]:
    """Ray tasks with the trial's resources, one per chunk (at least one per free trial slot)."""
    import ray

    from trainables.measure import configurations_costs

    from .ray_session import trial_slots

    task = ray.remote(configurations_costs).options(
        num_cpus=version.resources.cpu, num_gpus=version.resources.gpu, max_retries=1
    )
    chunks = _chunks(configs, trial_slots(version))
    results = ray.get([task.remote(trainable, chunk, names) for chunk in chunks])
    return [costs for chunk in results for costs in chunk]


def measure_in_processes(
    trainable: str, configs: list[dict[str, Any]], names: tuple[str, ...], version: StudyVersion
) -> list[dict[str, float] | str]:
    """Local processes (spawned: a clean torch in each), one chunk each, as many as the CPUs."""
    from trainables.measure import configurations_costs

    workers = max(1, min(os.cpu_count() or 1, math.ceil(len(configs) / CHUNK)))
    chunks = _chunks(configs, workers)
    if len(chunks) == 1:  # one chunk: no process to start
        return configurations_costs(trainable, chunks[0], names)
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        results = list(pool.map(configurations_costs, [trainable] * len(chunks), chunks, [names] * len(chunks)))
    return [costs for chunk in results for costs in chunk]


__all__ = ["CACHE", "configuration_costs", "fill_costs", "measure_in_processes", "measure_in_ray"]
