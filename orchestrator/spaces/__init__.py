"""Search spaces as data: typed distributions, study versions, loading, diffs, carry-over.

Pure Python plus PyYAML: nothing here imports ray, mlflow or torch, so light commands
(`orchestrator space validate`) start fast. Conversion to hyperopt lives in
``orchestrator.spaces.hyperopt`` and is imported only where a search runs.
"""

from .errors import Problem, SpaceError, ValueNotInSpace
from .io import Study, discover, load_study, load_version, load_with_lineage, parse_version
from .model import (
    NO_DEFAULT,
    Choice,
    Fixed,
    IntRange,
    LogUniform,
    Metric,
    Param,
    QLogUniform,
    QUniform,
    Resources,
    Schedule,
    SearchSettings,
    SearchSpace,
    StudyVersion,
    Uniform,
    flatten,
    same_value,
    unflatten,
)

__all__ = [
    "NO_DEFAULT", "Choice", "Fixed", "IntRange", "LogUniform", "Metric", "Param", "Problem",
    "QLogUniform", "QUniform", "Resources", "Schedule", "SearchSettings", "SearchSpace",
    "SpaceError", "Study", "StudyVersion", "Uniform", "ValueNotInSpace", "discover", "flatten",
    "load_study", "load_version", "load_with_lineage", "parse_version", "same_value", "unflatten",
]  # fmt: skip
