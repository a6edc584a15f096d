"""Production use of searched models: ``orchestrator train`` (``train``: the chosen trial trained longer and
registered) and ``orchestrator predict`` (whole scenes, bounded memory).

``defaults`` and ``rules`` (post-processing) are light; ``predict`` needs numpy, rasterio, torch and mlflow,
and is imported when one of its names is first used (``from orchestrator.production import predict_scenes``).
"""

from __future__ import annotations

import importlib
from typing import Any

from .rules import DEFAULT_RULES, RuleError, Rules, parse_rules

_FROM_PREDICT = ("PredictError", "PredictReport", "ScenePrediction", "predict_scenes")

__all__ = [
    "DEFAULT_RULES",
    "PredictError",
    "PredictReport",
    "RuleError",
    "Rules",
    "ScenePrediction",
    "parse_rules",
    "predict_scenes",
]


def __getattr__(name: str) -> Any:
    if name in _FROM_PREDICT:
        return getattr(importlib.import_module(".predict", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
