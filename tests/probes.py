"""What import probes (``python -c`` in a fresh interpreter) look for."""

from __future__ import annotations

HEAVY = ("torch", "ray", "mlflow", "hyperopt", "optuna")  # light modules import none of these
