"""Search spaces as data: typed distributions, study versions, loading, writing, diffs, carry-over.

Pure Python plus PyYAML: nothing here imports a searcher library, ray, mlflow or torch, so
light commands (`orchestrator space validate`) start fast. The model's step grid, option
rule and active-parameter walk are what the searcher backends in ``orchestrator.engine``
build their encodings on.
"""

from .errors import Problem, SpaceError, ValueNotInSpace
from .io import Study, discover, load_study, load_version, load_with_lineage
from .kinds import NO_DEFAULT, Fixed, IntRange, LogUniform, QLogUniform, QUniform, Uniform, same_value
from .parse import parse_version
from .space import ActiveParam, Choice, Param, SearchSpace, flatten, unflatten
from .version import Metric, Resources, Schedule, SearchSettings, StudyVersion
from .writer import dump, write

__all__ = [
    "NO_DEFAULT",
    "ActiveParam",
    "Choice",
    "Fixed",
    "IntRange",
    "LogUniform",
    "Metric",
    "Param",
    "Problem",
    "QLogUniform",
    "QUniform",
    "Resources",
    "Schedule",
    "SearchSettings",
    "SearchSpace",
    "SpaceError",
    "Study",
    "StudyVersion",
    "Uniform",
    "ValueNotInSpace",
    "discover",
    "dump",
    "flatten",
    "load_study",
    "load_version",
    "load_with_lineage",
    "parse_version",
    "same_value",
    "unflatten",
    "write",
]
