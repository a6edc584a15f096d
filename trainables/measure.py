"""Measuring a network's hardware costs (``trainables.costs``): parameters, multiply-adds, latency, GPU memory.

The shared loop measures a trial's task once before its first epoch (``measure_task``); ``network_costs`` measures
a configuration without data or training (a family's ``network`` hook builds the network), what carried trials of
a version that did not measure costs get (``orchestrator.engine.costs``). Both leave the training untouched: the
model is measured in eval mode on an input of zeros inside ``torch.random.fork_rng`` (no random number is drawn
from the trial's generators) and put back in the mode it was in.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .api import load_object
from .config import Config, resolve
from .costs import ALWAYS, GPU_MEMORY, LATENCY, LATENCY_BATCH, MACS, PARAMS
from .registry import get

WARMUP_CALLS = 2  # untimed calls first: lazy initialisation, cuDNN's algorithm search, caches
MIN_CALLS = 5  # timed calls at least ...
MAX_CALLS = 30  # ... and at most,
TIMED_S = 0.05  # stopping once the timed calls took this long (a large network on a CPU: MIN_CALLS)


@dataclass
class Network:
    """A trial's network built from its configuration: the model, the shape of one input sample (no batch
    dimension) and the batch it predicts in (its validation batch)."""

    model: nn.Module
    sample_shape: tuple[int, ...]
    prediction_batch: int


def count_params(model: nn.Module) -> int:
    """The number of parameters, as torch counts them."""
    return sum(p.numel() for p in model.parameters())


@contextlib.contextmanager
def _measuring(model: nn.Module, device: torch.device) -> Iterator[None]:
    """Eval mode, no gradients and the random generators untouched (forked) while measuring; the mode put back."""
    training = model.training
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices), torch.inference_mode():
            model.eval()
            yield
    finally:
        model.train(training)


def multiply_adds(model: nn.Module, sample: Tensor) -> int | None:
    """Multiply-adds of one forward pass of ``sample`` (a batch of 1): torchinfo's count; None where torchinfo is not
    installed (a machine that runs the training loop with torch alone, as the GPU benchmarks do)."""
    try:
        import torchinfo
    except ImportError:
        return None
    return int(torchinfo.summary(model, input_data=sample, verbose=0, mode="eval").total_mult_adds)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def latency_ms(call: Callable[[], Any], device: torch.device) -> float:
    """The median time of ``call`` in milliseconds: ``WARMUP_CALLS`` untimed, then ``MIN_CALLS`` to ``MAX_CALLS`` timed
    ones (until they took ``TIMED_S``), each between two synchronisations of a GPU."""
    for _ in range(WARMUP_CALLS):
        call()
    _synchronize(device)
    times: list[float] = []
    while len(times) < MIN_CALLS or (len(times) < MAX_CALLS and sum(times) < TIMED_S):
        start = time.perf_counter()
        call()
        _synchronize(device)
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)


def measure(
    model: nn.Module,
    sample: Tensor,
    prediction_batch: int,
    names: Collection[str] = ALWAYS,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> dict[str, float]:
    """The costs of ``names`` (``trainables.costs``; ``gpu_memory_mb`` aside: ``peak_gpu_memory_mb``) of ``model``
    on ``sample``'s device; ``sample`` is one input with its batch dimension (1, ...), ``autocast`` the trial's
    precision."""
    device = sample.device
    out: dict[str, float] = {}
    if PARAMS in names:
        out[PARAMS] = float(count_params(model))
    with _measuring(model, device):
        macs = multiply_adds(model, sample) if MACS in names else None
        if macs is not None:
            out[MACS] = float(macs)
        if LATENCY in names:
            with autocast():
                out[LATENCY] = latency_ms(lambda: model(sample), device)
        if LATENCY_BATCH in names:
            batch = sample.expand(prediction_batch, *sample.shape[1:]).contiguous(memory_format=_format(sample))
            with autocast():
                out[LATENCY_BATCH] = latency_ms(lambda: model(batch), device)
    return out


def _format(sample: Tensor) -> torch.memory_format:
    if sample.dim() == 4 and sample.is_contiguous(memory_format=torch.channels_last) and not sample.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


def peak_gpu_memory_mb(device: torch.device) -> dict[str, float]:
    """``gpu_memory_mb``: the peak memory torch allocated on ``device`` so far (CUDA only; nothing elsewhere)."""
    if device.type != "cuda":
        return {}
    return {GPU_MEMORY: torch.cuda.max_memory_allocated(device) / 2**20}


def build_network(trainable: str, config: Mapping[str, Any]) -> tuple[Network, Config]:
    """The network of ``config`` for the registered ``trainable``, built by its family's ``network`` hook without
    data; ``ValueError`` for a family without one."""
    spec = get(trainable)
    if not spec.network:
        raise ValueError(f"trainable {trainable!r} cannot build its network without data (no network hook)")
    cfg = resolve(trainable, config)
    hook: Callable[[Config], Network] = load_object(spec.network)
    with torch.random.fork_rng():
        torch.manual_seed(cfg.seed)
        return hook(cfg), cfg


def network_costs(trainable: str, config: Mapping[str, Any], names: Collection[str] = ALWAYS) -> dict[str, float]:
    """The costs of ``names`` of ``config`` without training: its network built from the configuration on the device
    and precision a trial of it would get (``Runtime.create``), measured as the shared loop measures a trial."""
    from .loop import Runtime

    network, cfg = build_network(trainable, config)
    runtime = Runtime.create(cfg)
    model = runtime.prepare(network.model)
    sample = runtime.tensor(torch.zeros(1, *network.sample_shape))
    return measure(model, sample, network.prediction_batch, names, runtime.autocast)


def configurations_costs(
    trainable: str, configs: list[Mapping[str, Any]], names: Collection[str]
) -> list[dict[str, float] | str]:
    """``network_costs`` of each configuration, in order, in this process (one worker's share of many): the costs, or
    the first line of why they could not be computed (a configuration the family rejects)."""
    from .api import first_line

    out: list[dict[str, float] | str] = []
    for config in configs:
        try:
            out.append(network_costs(trainable, config, names))
        except Exception as error:
            out.append(first_line(error))
    return out


__all__ = [
    "Network",
    "build_network",
    "configurations_costs",
    "count_params",
    "latency_ms",
    "measure",
    "multiply_adds",
    "network_costs",
    "peak_gpu_memory_mb",
]
