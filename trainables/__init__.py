"""Trainables: PyTorch models, data and training loops, registered by name.

``import trainables`` stays light (no torch): it imports each family's spec module, which
registers its specs; a spec's training code is imported only when a trial starts.
"""

from . import analytic  # noqa: F401  (registers "analytic")
from .api import Reporter, TrainableConfigError, TrainableSpec, TrialFailed, UnknownTrainable
from .convnet import spec as _convnet_spec  # noqa: F401  (registers "convnet", "convnet_tiny")
from .registry import create, get, names, register, validate_config
from .unet import spec as _unet_spec  # noqa: F401  (registers "unet", "unet_tiny")

__all__ = [
    "Reporter",
    "TrainableConfigError",
    "TrainableSpec",
    "TrialFailed",
    "UnknownTrainable",
    "create",
    "get",
    "names",
    "register",
    "validate_config",
]
