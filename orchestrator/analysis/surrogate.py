"""A Gaussian process of trial losses: fitted once, then asked for its mean and for sample functions anywhere.

The inputs are configurations encoded in [0, 1] per column (``evidence.Encoding``). The losses are
Yeo-Johnson transformed and standardised first (scikit-learn's ``PowerTransformer``): a monotone map, so
"better than the best seen" means the same before and after, while heavy tails (a diverged training, the
far side of Branin) no longer decide the fit. The kernel is a constant times a Matérn 5/2 with one length
scale per column (a parameter that does not matter gets a long one) plus white noise (training is noisy);
its hyperparameters are fitted by scikit-learn's ``GaussianProcessRegressor`` (L-BFGS from one fixed start,
so the same data give the same fit) on at most ``FIT_MAX`` rows; the posterior conditions on every row.

``posterior(rows, short)`` conditions the fitted kernel on some of the trials only (those that took a
conditional option): few trials there, a wide posterior there, whatever the rest of the study says. The
option's own inputs get length scales of at most ``SUB_LENGTH`` in it: how much they matter can only be
learned from the trials that took the option, and a fit dominated by the other trials (where those inputs
are inactive) may call them irrelevant (a long length scale) on the strength of a handful of trials.

Sample functions are drawn by pathwise conditioning (Wilson et al., "Efficiently sampling functions from
Gaussian process posteriors", ICML 2020): a prior sample from ``FEATURES`` random Fourier features of the
fitted Matérn kernel, plus the exact update from the data, ``f(.) + k(., X) (K + s^2 I)^-1 (y - f(X) - e)``.
Each sample is then a function that costs O(FEATURES + n) per point, so the evidence can look at thousands
of configurations per parameter without the cubic cost of joint sampling; the samples are of the underlying
function, without observation noise, so a region holds a better value when the function is better there,
not when one noisy draw is.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

SUB_LENGTH = 0.3  # the longest length scale an option's own inputs get in the posterior of its trials


def one_blas_thread() -> Any:
    """A context in which BLAS runs on one thread: the matrices here are at most ``evidence.MODEL_MAX`` square,
    and on a busy machine BLAS threads waiting for each other made a 300 x 300 Cholesky 50 times slower."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


FIT_MAX = 200  # rows the kernel's hyperparameters are fitted on (a seeded subsample beyond)
FEATURES = 512  # random Fourier features of a prior sample
NU = 2.5  # the Matérn kernel's smoothness
JITTER = 1e-8  # added to the diagonal of the training covariance, relative to the signal variance


class Surrogate:
    """The fitted kernel and loss transform; ``posterior(rows)`` conditions on some or all of the trials."""

    def __init__(self, X: np.ndarray, losses: np.ndarray, seed: int) -> None:
        import numpy as np
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
        from sklearn.preprocessing import PowerTransformer

        self._transform = PowerTransformer(method="yeo-johnson", standardize=True)
        y = self._transform.fit_transform(np.asarray(losses, dtype=float).reshape(-1, 1)).ravel()
        n, d = X.shape
        fit_rows = np.arange(n)
        if n > FIT_MAX:
            fit_rows = np.sort(np.random.default_rng(seed).choice(n, FIT_MAX, replace=False))
        kernel = ConstantKernel(1.0, (1e-2, 1e2)) * Matern(
            length_scale=np.full(d, 0.5), length_scale_bounds=(1e-2, 30.0), nu=NU
        ) + WhiteKernel(1e-2, (1e-6, 1.0))
        gp = GaussianProcessRegressor(kernel, normalize_y=False, n_restarts_optimizer=0)
        with warnings.catch_warnings():  # a length scale at its bound is an answer (it does not matter), not a fault
            warnings.simplefilter("ignore", ConvergenceWarning)
            gp.fit(X[fit_rows], y[fit_rows])
        self.kernel: Any = gp.kernel_
        self.signal = gp.kernel_.k1
        self.variance = float(gp.kernel_.k1.k1.constant_value)
        self.length_scale = np.broadcast_to(np.asarray(gp.kernel_.k1.k2.length_scale, dtype=float), (d,))
        self.noise = float(gp.kernel_.k2.noise_level) + JITTER * self.variance
        self.X, self.y = X, y

    def transform(self, loss: float) -> float:
        """``loss`` on the model's scale."""
        import numpy as np

        return float(self._transform.transform(np.array([[loss]], dtype=float))[0, 0])

    def posterior(self, rows: Sequence[int] | None = None, short: Sequence[int] = ()) -> Posterior:
        """The process conditioned on the trials at ``rows`` (all by default; none: the prior), the length scales
        of the ``short`` columns at most ``SUB_LENGTH``."""
        import numpy as np
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern

        length_scale = self.length_scale.copy()
        length_scale[list(short)] = np.minimum(length_scale[list(short)], SUB_LENGTH)
        signal = ConstantKernel(self.variance, "fixed") * Matern(length_scale, "fixed", nu=NU)
        chosen = np.arange(len(self.y)) if rows is None else np.asarray(rows, dtype=int)
        return Posterior(self, chosen, signal, length_scale)


class PriorSamples:
    """Prior sample functions of a Matérn kernel (random Fourier features): ``prior(Z)`` is rows x samples."""

    def __init__(self, variance: float, length_scale: np.ndarray, samples: int, rng: np.random.Generator) -> None:
        import numpy as np

        d = length_scale.shape[0]
        # The Matérn-nu spectral density is a Student t with 2 nu degrees of freedom, scaled by 1 / length scale.
        chi = rng.chisquare(2 * NU, size=FEATURES) / (2 * NU)
        self._omega = rng.standard_normal((FEATURES, d)) / length_scale[None, :] / np.sqrt(chi)[:, None]
        self._phase = rng.uniform(0.0, 2 * math.pi, size=FEATURES)
        self._weights = rng.standard_normal((FEATURES, samples)) * math.sqrt(2 * variance / FEATURES)
        self.samples = samples

    def __call__(self, Z: np.ndarray) -> np.ndarray:
        import numpy as np

        return np.cos(Z @ self._omega.T + self._phase) @ self._weights


class Posterior:
    """The process conditioned on some trials: ``mean(Z)``, and ``sampler(samples, rng)`` for sample functions."""

    def __init__(self, model: Surrogate, rows: np.ndarray, signal: Any, length_scale: np.ndarray) -> None:
        import numpy as np

        self.model, self.signal, self.length_scale = model, signal, length_scale
        self.X, self.y = model.X[rows], model.y[rows]
        self.trials = len(rows)
        if self.trials:
            K = signal(self.X) + model.noise * np.eye(self.trials)
            self._linv = np.linalg.inv(np.linalg.cholesky(K))
            self._alpha = self._solve(self.y)

    def _solve(self, b: np.ndarray) -> np.ndarray:
        """``(K + s^2 I)^-1 b``."""
        return self._linv.T @ (self._linv @ b)

    def mean(self, Z: np.ndarray) -> np.ndarray:
        """The posterior mean at each row of ``Z``."""
        import numpy as np

        if not self.trials:
            return np.zeros(len(Z))
        return self.signal(Z, self.X) @ self._alpha

    def sampler(self, samples: int, rng: np.random.Generator) -> Sampler:
        """``samples`` prior functions conditioned on this posterior's trials (pathwise)."""
        return Sampler(self, PriorSamples(self.model.variance, self.length_scale, samples, rng), rng)


class Sampler:
    """Posterior sample functions: ``sampler(Z)`` is their values at the rows of ``Z`` (samples x rows)."""

    def __init__(self, posterior: Posterior, prior: PriorSamples, rng: np.random.Generator) -> None:
        self._posterior, self._prior = posterior, prior
        if posterior.trials:
            noise = rng.standard_normal((posterior.trials, prior.samples)) * math.sqrt(posterior.model.noise)
            self._update = posterior._solve(posterior.y[:, None] - prior(posterior.X) - noise)

    def __call__(self, Z: np.ndarray) -> np.ndarray:
        values = self._prior(Z)
        if self._posterior.trials:
            values = values + self._posterior.signal(Z, self._posterior.X) @ self._update
        return values.T
