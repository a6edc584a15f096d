"""Trainables: PyTorch models, data and training loops, registered by name.

``import trainables`` stays light (no torch): the registry holds specs whose training
functions are imported only when a trial starts.
"""

from .api import Reporter, TrainableConfigError, TrainableSpec, TrialFailed, UnknownTrainable
from .registry import create, get, names, register, validate_config

__all__ = [
    "Reporter", "TrainableConfigError", "TrainableSpec", "TrialFailed", "UnknownTrainable",
    "create", "get", "names", "register", "validate_config",
]  # fmt: skip
