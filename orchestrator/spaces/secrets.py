"""Secret values in a space: searched parameters may not have secret-looking names, and fixed ones are masked.

The values of secret-looking keys (``orchestrator.redaction.is_secret_key``) are recorded as ``***``
everywhere: MLflow, Ray Tune's state and trial folders, ``orchestrator.json``. They must therefore be
fixed values (the space knows them): the searcher searches the masked space (:func:`mask_secrets`), and the
trainable gets the values back in the driver's process (:func:`with_fixed_values`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestrator.redaction import REDACTED, is_secret_key, mask_yaml_secrets

from .errors import Problem
from .parse import parse_version
from .space import SearchSpace
from .version import StudyVersion
from .writer import dump


def secret_problems(version: StudyVersion) -> list[Problem]:
    """A problem for each searched parameter with a secret-looking name: recorded as ``***``, its values could not
    be told apart, carried or given back to the trainable."""
    searched = [
        label for label, p in version.params.walk() if not p.is_fixed and is_secret_key(label.rpartition(".")[2])
    ]
    where = str(version.source) if version.source else None
    return [
        Problem(
            f"params.{label}",
            f"{label} looks like a secret (recorded as {REDACTED} wherever trials are kept), so it cannot be searched; "
            "make it a fixed value, or rename it if it is not a secret",
            where,
        )
        for label in searched
    ]


def mask_secrets(version: StudyVersion) -> StudyVersion:
    """``version`` with the values of secret-looking keys masked: what Ray Tune may pickle, and the configs it
    issues. The content hash is the masked space's; the real version's is recorded (``content_hash``)."""
    masked = mask_yaml_secrets(dump(version))
    return version if masked is None else parse_version(masked, version.source)


def with_fixed_values(version: StudyVersion, config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` as Ray Tune holds it (secret-looking fixed entries redacted) with every fixed entry's value back."""
    out = _with_fixed(version.params, config)
    out.update({k: v for k, v in version.fixed.items() if k in out})
    return out


def _with_fixed(space: SearchSpace, config: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(config)
    for name, p in space.params.items():
        if name not in out:
            continue
        if p.is_fixed:
            out[name] = p.default_value
            continue
        option = p.select(out[name]) if p.is_choice else None
        sub = None if option is None else p.sub_space(option)
        if sub is not None and isinstance(out[name], Mapping):
            out[name] = _with_fixed(sub, out[name])
    return out
