"""hyperopt's TPE with a joint model: its Parzen estimators combined as one mixture of product kernels per group.

hyperopt's ``tpe.suggest`` fits a good density l and a bad density g to each label on its own and picks each
label's value as the best of ``n_EI_candidates`` draws by that label's ratio l/g alone. Where parameters
interact (a learning rate good only with some batch sizes) the best value of each label on its own is not the
best pair, and such a model cannot follow a ridge.

This keeps hyperopt's estimator and changes only how the labels combine, as the multivariate TPE of BOHB
(Falkner et al. 2018) and Optuna (``multivariate=True``) do:

* per label, each observation's kernel is hyperopt's: a Gaussian truncated to the label's range, its mean the
  observed draw (on a log scale for a log range), its width hyperopt's adaptive rule
  (``hyperopt.tpe.adaptive_parzen_normal``: the larger distance to its neighbours, clipped); a choice's kernel
  puts most weight on the option observed (Optuna's rule: ``prior_weight / components`` on every option, 1 more
  on the observed one);
* except on a grid (an ``int`` range or a linear ``q``/``step`` one, drawn over its positions and rounded): there
  every kernel has one width, Scott's rule as Optuna's multivariate TPE scales it (``_grid_kernels``: 0.2 of the
  range at one observation, shrinking as ``n ** (-1 / (labels + 4))``). On a grid many observations share a
  position, hyperopt's neighbour distance between them is 0 and the width falls to its floor (the range over
  ``min(100, n + 2)``): the bad density becomes spikes at the positions seen, a candidate drawn between them (3.4,
  which is position 3) scores by the gap it fell in rather than by its position, and the ratio stops telling
  positions apart. On HPOLib's four tables (6 grids and 3 choices each; ``python -m bench.tabular --held-out --seeds
  30``) the median incumbent after 50 and after 100 trials is at least Optuna's multivariate TPE's at all 8
  checkpoints with one width, at 2 of 8 with hyperopt's widths; on HPOBench's MLP tables (5 grids) the two are
  within the seeds' noise of each other. The price is on smooth functions without noise, where keeping to the good
  trials' exact positions pays: Hartmann-6 on 11 positions per axis (``python -m bench.tabular --synthetic``, 30
  seeds) reaches a median -2.41 / -2.93 after 50 / 100 trials with one width, -2.82 / -3.08 with hyperopt's
  (Optuna's multivariate TPE -2.72 / -3.14);
* an observation is **one component in all of its labels at once** (the product of its kernels), weighted as
  hyperopt weighs it (``linear_forgetting_weights``: the newest 25 at full weight) beside a prior component of
  weight ``prior_weight`` (the whole range, or every option alike);
* candidates are drawn from the good mixture one component at a time, so every label of a candidate lies near
  the same good trial, and they are ranked by the **joint** ratio l(x)/g(x).

Conditional sub-spaces: labels are grouped by where they live (the top level, or one option's sub-space:
``Axis.group``); each group is modelled jointly over the observations in which its labels are all active, with
the good set chosen among all observations (Optuna's ``group=True``). Groups are drawn on their own, every group
at every suggestion; the space's structure picks the ones a configuration uses (``backends.hyperopt.decode``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from hyperopt import tpe

from orchestrator.engine.backends.hyperopt import Axis

DEFAULT_CANDIDATES = 24  # hyperopt's ``n_EI_candidates``
DEFAULT_PRIOR_WEIGHT = 1.0  # hyperopt's ``prior_weight``
GRID_BANDWIDTH = 0.2  # a grid axis's kernel width at one observation, as a share of its range (Optuna's multivariate)
FORGETTING = tpe.DEFAULT_LF  # observations past which hyperopt's linear forgetting weighs the older ones down
_LOG_SQRT_2PI = 0.5 * np.log(2 * np.pi)
_MAX_REDRAWS = 100  # a truncated draw outside its range is redrawn; each keeps at least a third of its mass inside


@dataclass(frozen=True)
class Observation:
    """One modelled trial: its draw per label (hyperopt's ``misc.vals``: ``[v]``, or ``[]`` when inactive)."""

    vals: Mapping[str, Sequence[float]]
    loss: float


@dataclass
class _Mixture:
    """A mixture of product kernels over some axes: component ``k`` weighs ``log_weights[k]``; per continuous axis
    its truncated Gaussian (``mus``, ``sigmas``), per choice its row of option probabilities (``probs``)."""

    log_weights: np.ndarray  # (K,)
    mus: np.ndarray  # (K, continuous axes), in the model's scale (log for a log range)
    sigmas: np.ndarray  # (K, continuous axes)
    low: np.ndarray  # (continuous axes,)
    high: np.ndarray
    probs: list[np.ndarray]  # per choice: (K, options)

    def log_pdf(self, x: np.ndarray, options: np.ndarray) -> np.ndarray:
        """Log density of candidates ``x`` (C, continuous axes) with choices ``options`` (C, choices)."""
        per = np.broadcast_to(self.log_weights, (len(x), len(self.log_weights))).copy()  # (C, K)
        if x.shape[1]:
            z = (x[:, None, :] - self.mus[None]) / self.sigmas[None]
            mass = tpe.normal_cdf(self.high, self.mus, self.sigmas) - tpe.normal_cdf(self.low, self.mus, self.sigmas)
            log_norm = np.log(self.sigmas) + _LOG_SQRT_2PI + np.log(np.maximum(mass, 1e-300))  # (K, axes)
            per += (-0.5 * z**2 - log_norm[None]).sum(axis=2)
        for j, probs in enumerate(self.probs):
            per += np.log(probs[:, options[:, j]]).T
        return np.logaddexp.reduce(per, axis=1)

    def sample(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
        """``size`` draws: a component by weight, then every axis from that component's kernel."""
        weights = np.exp(self.log_weights - self.log_weights.max())
        comp = rng.choice(len(weights), size=size, p=weights / weights.sum())
        mus, sigmas = self.mus[comp], self.sigmas[comp]
        x = rng.normal(mus, sigmas)
        for _ in range(_MAX_REDRAWS):  # truncation by rejection, as hyperopt's GMM1 draws
            outside = (x < self.low) | (x > self.high)
            if not outside.any():
                break
            x[outside] = rng.normal(mus[outside], sigmas[outside])
        x = np.clip(x, self.low, self.high)
        options = np.empty((size, len(self.probs)), dtype=int)
        for j, probs in enumerate(self.probs):
            cum = probs[comp].cumsum(axis=1)
            u = rng.random(size)[:, None] * cum[:, -1:]
            options[:, j] = np.minimum((u >= cum).sum(axis=1), probs.shape[1] - 1)
        return x, options


def _continuous_kernels(values: np.ndarray, low: float, high: float, prior_weight: float) -> np.ndarray:
    """Each observation's kernel width on one axis (in the observations' order), then the prior's: hyperopt's
    ``adaptive_parzen_normal``, whose output is sorted by value with the prior inserted, mapped back."""
    prior_mu, prior_sigma = 0.5 * (low + high), high - low
    _, sorted_mus, sigmas = tpe.adaptive_parzen_normal(values, prior_weight, prior_mu, prior_sigma, FORGETTING)
    n = len(values)
    if n == 0:
        return np.array([prior_sigma])
    if n == 1:
        position = np.array([1 if prior_mu < values[0] else 0])
    else:  # the same sort as hyperopt's, and where it put the prior
        order = np.argsort(values)
        prior_at = np.searchsorted(values[order], prior_mu)
        ranks = np.arange(n)
        position = np.empty(n, dtype=int)
        position[order] = ranks + (ranks >= prior_at)
    if not np.array_equal(sorted_mus[position], values):
        raise RuntimeError("hyperopt's adaptive_parzen_normal changed its ordering; the joint model cannot use it")
    return np.append(sigmas[position], prior_sigma)


def _grid_kernels(n: int, dims: int, low: float, high: float) -> np.ndarray:
    """The kernel widths on a grid axis of ``n`` observations in a group of ``dims`` labels, then the prior's: one
    width for all, Scott's rule as Optuna's multivariate TPE scales it (``GRID_BANDWIDTH * n ** (-1 / (dims +
    4))`` of the range)."""
    width = high - low
    return np.append(np.full(n, GRID_BANDWIDTH * max(n, 1) ** (-1.0 / (dims + 4)) * width), width)


def _mixture(rows: np.ndarray, cats: np.ndarray, axes: Sequence[Axis], prior_weight: float) -> _Mixture:
    """The mixture of the observations ``rows`` (continuous axes) and ``cats`` (choices), in the order observed."""
    n = len(rows)
    weights = np.append(tpe.linear_forgetting_weights(n, FORGETTING), prior_weight) if n else np.ones(1)
    continuous = [a for a in axes if not a.options]
    choices = [a for a in axes if a.options]
    low = np.array([a.low for a in continuous])
    high = np.array([a.high for a in continuous])
    mus = np.vstack([rows, 0.5 * (low + high)[None]]) if n else 0.5 * (low + high)[None]
    sigmas = np.empty((n + 1, len(continuous)))
    for j, a in enumerate(continuous):
        if a.grid:
            sigmas[:, j] = _grid_kernels(n, len(axes), a.low, a.high)
        else:
            sigmas[:, j] = _continuous_kernels(rows[:, j], a.low, a.high, prior_weight)
    probs = []
    for j, a in enumerate(choices):
        table = np.full((n + 1, a.options), prior_weight / (n + 1))
        table[np.arange(n), cats[:, j]] += 1.0
        table[n] = 1.0  # the prior: every option alike
        probs.append(table / table.sum(axis=1, keepdims=True))
    return _Mixture(np.log(weights / weights.sum()), mus, sigmas, low, high, probs)


def _values(obs: Observation, axes: Sequence[Axis]) -> tuple[list[float], list[int]] | None:
    """An observation's draws on ``axes`` in the model's scale, or None when one of them is inactive."""
    continuous, options = [], []
    for a in axes:
        v = obs.vals.get(a.label) or []
        if not len(v):
            return None
        if a.options:
            options.append(int(v[0]))
        else:
            continuous.append(float(np.log(v[0])) if a.log else float(v[0]))
    return continuous, options


def _side(observations: Sequence[Observation], axes: Sequence[Axis], prior_weight: float) -> _Mixture:
    """The mixture of the observations in which every one of ``axes`` (continuous ones first) is active."""
    continuous = [a for a in axes if not a.options]
    choices = [a for a in axes if a.options]
    drawn = [v for v in (_values(o, [*continuous, *choices]) for o in observations) if v is not None]
    rows = np.array([c for c, _ in drawn], dtype=float).reshape(len(drawn), len(continuous))
    cats = np.array([o for _, o in drawn], dtype=int).reshape(len(drawn), len(choices))
    return _mixture(rows, cats, [*continuous, *choices], prior_weight)


def suggest(
    axes: Sequence[Axis],
    observations: Sequence[Observation],
    n_good: int,
    seed: int,
    n_candidates: int = DEFAULT_CANDIDATES,
    prior_weight: float = DEFAULT_PRIOR_WEIGHT,
) -> dict[str, list[float]]:
    """The next draw (``misc.vals``: ``{label: [v]}`` for every label) from ``observations`` (oldest first): the good
    set is the ``n_good`` lowest losses (the earliest on ties), each group of ``axes`` is drawn jointly."""
    rng = np.random.default_rng(seed)
    order = np.argsort([o.loss for o in observations], kind="stable")
    good_ones = set(order[: max(0, n_good)].tolist())
    good = [o for i, o in enumerate(observations) if i in good_ones]
    bad = [o for i, o in enumerate(observations) if i not in good_ones]
    out: dict[str, list[float]] = {}
    for group in dict.fromkeys(a.group for a in axes):
        continuous = [a for a in axes if a.group == group and not a.options]
        choices = [a for a in axes if a.group == group and a.options]
        below, above = _side(good, continuous + choices, prior_weight), _side(bad, continuous + choices, prior_weight)
        x, options = below.sample(rng, n_candidates)
        best = int(np.argmax(below.log_pdf(x, options) - above.log_pdf(x, options)))
        for j, a in enumerate(continuous):
            out[a.label] = [float(np.exp(x[best, j])) if a.log else float(x[best, j])]
        for j, a in enumerate(choices):
            out[a.label] = [int(options[best, j])]
    return out
