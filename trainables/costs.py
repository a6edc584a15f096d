"""The hardware costs a trial on the shared loop reports beside its metrics: names and rules, no torch.

Every family on the shared loop (``TrainableSpec.task``) reports, with every epoch's metrics, what its network
costs to hold and to run, measured once per trial before its first epoch, on the trial's own device
(``trainables.measure``):

* ``params``: the number of parameters (``sum(p.numel())``, what torch counts);
* ``macs``: multiply-adds for one sample (torchinfo's count of a forward pass of a batch of 1);
* ``latency_ms``: inference time of a batch of 1, and ``latency_batch_ms`` of the trainable's prediction batch (its
  validation batch): the median of repeated timed calls after a warm-up, in eval mode under the trial's precision,
  with ``torch.cuda.synchronize`` around each call on a GPU. Measured only when the search names them (an objective
  or a constraint: ``Reporter.measure``), since they take a second or more for a large network on a CPU;
* ``gpu_memory_mb``: on CUDA only, the peak memory torch allocated so far in the trial (training included).

They depend on the configuration alone (but ``gpu_memory_mb``, which needs a training step on the GPU), so a carried
trial of a version that did not measure them gets them computed from its configuration without training
(``computable``; ``orchestrator.engine.costs``): a family states how to build its network without data with its
``network`` hook.
"""

from __future__ import annotations

from .registry import get

PARAMS = "params"
MACS = "macs"
LATENCY = "latency_ms"
LATENCY_BATCH = "latency_batch_ms"
GPU_MEMORY = "gpu_memory_mb"

COSTS = (PARAMS, MACS, LATENCY, LATENCY_BATCH, GPU_MEMORY)  # what a family on the shared loop may report
ALWAYS = (PARAMS, MACS)  # measured for every trial (a few milliseconds)
LATENCIES = (LATENCY, LATENCY_BATCH)  # measured when the search names them
FROM_CONFIGURATION = (PARAMS, MACS, LATENCY, LATENCY_BATCH)  # what a network built from its configuration gives
SOMETIMES = (*LATENCIES, GPU_MEMORY)  # reported only when named (the latencies) or on CUDA (GPU memory)


def computable(trainable: str) -> tuple[str, ...]:
    """The costs a carried trial of ``trainable`` may lack: computed from its configuration, without training,
    when the family builds its network without data (``TrainableSpec.network``); none otherwise."""
    return FROM_CONFIGURATION if get(trainable).network else ()


def to_measure(names: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Of metric names a search needs, the costs measured only when named (the latencies)."""
    return tuple(name for name in LATENCIES if name in names)


__all__ = [
    "ALWAYS",
    "COSTS",
    "FROM_CONFIGURATION",
    "GPU_MEMORY",
    "LATENCIES",
    "LATENCY",
    "LATENCY_BATCH",
    "MACS",
    "PARAMS",
    "SOMETIMES",
    "computable",
    "to_measure",
]
