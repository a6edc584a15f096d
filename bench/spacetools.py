"""Search-space helpers the benchmarks share: building versions from plain sections, sampling.

Everything works on the orchestrator's own ``SearchSpace`` / ``StudyVersion`` types, so one space
definition drives the orchestrator's searchers and the baselines alike; the libraries' views of a space
are the product's (``orchestrator.engine.backends``), and so is refining a version into the next one
(``orchestrator.spaces.refine``, written out by ``orchestrator.spaces.writer``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import yaml

from orchestrator.engine.backends import hyperopt as hyperopt_backend
from orchestrator.spaces import SearchSpace, StudyVersion, parse_version

# --------------------------------------------------------------------------- building versions


def version_text(
    study: str,
    params: Mapping[str, Any],
    *,
    version: int = 1,
    trainable: str = "analytic",
    metric: tuple[str, str] = ("loss", "min"),
    search: Mapping[str, Any] | None = None,
    schedule: Mapping[str, Any] | None = None,
    resources: Mapping[str, Any] | None = None,
    fixed: Mapping[str, Any] | None = None,
    objectives: Sequence[tuple[str, str]] = (),
    constraints: Mapping[str, Mapping[str, float]] | None = None,
) -> str:
    """A space file (YAML text) with the given sections; ``params`` in the file's own syntax. ``objectives`` (two or
    three ``(name, mode)``) replace ``metric``; ``constraints`` maps a metric to its ``{max, min}``."""
    doc: dict[str, Any] = {"study": study, "version": version, "trainable": trainable}
    if objectives:
        doc["objectives"] = [{"name": name, "mode": mode} for name, mode in objectives]
    else:
        doc["metric"] = {"name": metric[0], "mode": metric[1]}
    if constraints:
        doc["constraints"] = {name: dict(bounds) for name, bounds in constraints.items()}
    for key, section in (("schedule", schedule), ("resources", resources), ("search", search), ("fixed", fixed)):
        if section:
            doc[key] = dict(section)
    doc["params"] = dict(params)
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=120)


def make_version(study: str, params: Mapping[str, Any], **kw: Any) -> StudyVersion:
    """A validated ``StudyVersion`` (through the project's own parser) from plain sections."""
    return parse_version(version_text(study, params, **kw), f"<bench {study}>")


# --------------------------------------------------------------------------- sampling


def sample_config(space: SearchSpace, rng: np.random.Generator) -> dict[str, Any]:
    """A uniformly random configuration of ``space`` (log-uniform on log scales): values, never indices.

    The draw is the product's random search (``orchestrator.engine.backends.hyperopt``), so benchmark data
    and searchers share one encoding.
    """
    return hyperopt_backend.sample(space, rng)
