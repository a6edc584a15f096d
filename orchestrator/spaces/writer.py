"""Write a ``StudyVersion`` back as a space file: plain YAML in the documented format.

``parse_version(dump(v)) == v``, with the same content hash, for every version the loader
can produce. The file reads like a hand-written one: top-level keys in the documented
order, parameters in the version's own order, settings only where they differ from the
defaults, and each parameter on one line in flow style (``lr: {loguniform: [0.0001, 0.01]}``)
when it fits. Floats are written so that YAML 1.1 (PyYAML) reads numbers (``1.0e-05``,
never ``1e-5``); text that a YAML reader could take for a number, a boolean or null is
quoted; multi-line notes are block scalars.
"""

from __future__ import annotations

import errno
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from .errors import SpaceError
from .parse import TOP_KEYS, parse_version
from .version import StudyVersion, vars_of

FLOW_WIDTH = 100  # a mapping or list goes on its key's line when the line stays this short
BLOCK_SECTIONS = ("fixed", "params")  # one entry per line, like the shipped files

_OTHER_LINE_BREAKS = "\r\x85\u2028\u2029"  # line breaks to YAML besides "\n"

# Plain text that some YAML reader (1.1 or 1.2) takes for a boolean or null.
_LOOKS_LIKE_KEYWORD = {"true", "false", "yes", "no", "on", "off", "y", "n", "null", "~", ""}


def to_document(version: StudyVersion) -> dict[str, Any]:
    """The version in the file's syntax, keys in the documented order, defaults left out."""
    sections: dict[str, Any] = {
        "study": version.study,
        "version": version.version,
        "parent": version.parent,
        "trainable": version.trainable,
        "metric": None if version.objectives else {"name": version.metric.name, "mode": version.metric.mode},
        "objectives": [{"name": m.name, "mode": m.mode} for m in version.objectives] or None,
        "constraints": {c.name: c.spec() for c in version.constraints} or None,
        "schedule": _non_default(version.schedule),
        "resources": _non_default(version.resources),
        "search": _non_default(version.search),
        "fixed": dict(version.fixed),
        "params": version.params.spec(),
        "notes": version.notes,
    }
    return {key: sections[key] for key in TOP_KEYS if sections[key] not in (None, {}, "")}


def dump(version: StudyVersion) -> str:
    """The version as the text of a space file."""
    document = to_document(version)
    layout = {key: _layout(value, 0, len(key) + 2, block=key in BLOCK_SECTIONS) for key, value in document.items()}
    return yaml.dump(layout, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=_NO_WRAP)


def write(version: StudyVersion, path: str | Path) -> Path:
    """Write a new space file at ``path`` (folders created); never overwrites one.

    The text is read back before it is written: a version the file syntax cannot express
    raises ``ValueError`` and leaves no file.
    """
    path = Path(path)
    text = dump(version)
    try:
        survives = parse_version(text, "<written text>") == version
    except SpaceError as e:
        raise ValueError(f"{version.label} cannot be written as a space file: {e}") from None
    if not survives:
        raise ValueError(f"{version.label} does not survive writing as a space file")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with path.open("x", encoding="utf-8") as f:
            f.write(text)
    except FileExistsError:
        raise FileExistsError(
            errno.EEXIST, "a space file is never overwritten; write a new version", str(path)
        ) from None
    return path


def _non_default(settings: Any) -> dict[str, Any]:
    defaults = type(settings)()
    return {k: v for k, v in vars_of(settings).items() if v != getattr(defaults, k)}


# --------------------------------------------------------------------------- YAML layout

_NO_WRAP = 1 << 30  # PyYAML folds long lines at ``width``; a file line is never folded


class _Flow(dict):
    """A mapping written in flow style (``{a: 1, b: 2}``)."""


class _FlowList(list):
    """A list written in flow style (``[1, 2]``)."""


def _layout(node: Any, column: int, lead: int, block: bool = False) -> Any:
    """``node`` with every mapping or list that fits on its line marked for flow style.

    ``column`` is where the node's key (or list dash) starts, ``lead`` the characters before
    the value on that line (``key: `` or ``- ``).
    """
    if not isinstance(node, Mapping | list) or not node:
        return node
    if not block and column + lead + len(_flow_text(node)) <= FLOW_WIDTH:
        return _Flow(node) if isinstance(node, Mapping) else _FlowList(node)
    if isinstance(node, Mapping):
        return {key: _layout(value, column + 2, len(str(key)) + 2) for key, value in node.items()}
    return [_layout(item, column + 2, 2) for item in node]


def _flow_text(node: Any) -> str:
    return yaml.dump(node, Dumper=_Dumper, default_flow_style=True, sort_keys=False, width=_NO_WRAP).strip()


class _Dumper(yaml.SafeDumper):
    """Safe YAML with list items indented under their key, as the documentation writes them."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = None
    if any(ch in text for ch in _OTHER_LINE_BREAKS):
        style = '"'  # escaped: PyYAML would fold these breaks into spaces in any other style
    elif "\n" in text:
        style = "|"  # PyYAML falls back to double quotes where a block scalar cannot hold the text
    elif text.strip().lower() in _LOOKS_LIKE_KEYWORD or _reads_as_number(text):
        style = "'"
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


def _reads_as_number(text: str) -> bool:
    """Whether a YAML 1.2 reader would take the plain text for a number (``1e-3``, ``0o17``, ``.5``)."""
    for parse in (float, lambda t: int(t, 0)):
        try:
            parse(text)
        except ValueError:
            continue
        return True
    return False


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(
    _Flow, lambda d, data: d.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=True)
)
_Dumper.add_representer(_FlowList, lambda d, data: d.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True))

__all__ = ["dump", "to_document", "write"]
