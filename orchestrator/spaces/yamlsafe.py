"""Space files read as YAML safely: PyYAML's ``SafeLoader`` composes the node graph once, which is walked under
limits (size, nodes, nesting) for line numbers before it is turned into data, so nothing in a space file is ever
executed or expanded past those limits. YAML 1.1's exponent quirk (``1e-3`` read as a string) is fixed here too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from .errors import Problem, SpaceError

# --------------------------------------------------------------------------- limits and the YAML graph

MAX_FILE_BYTES = 1 << 20
"""Space files are at most 1 MiB, checked before parsing (real ones are a few KiB)."""
MAX_NODES = 100_000
"""Nodes visited while walking a file's YAML graph, counting every visit through an alias."""
MAX_NESTING = 64
"""Nesting depth of the YAML document (mappings and lists inside each other)."""
MAX_CHOICE_DEPTH = 16
"""Levels of choice sub-spaces inside each other (``params.a.choice[0].b.choice[1]...``)."""

# A number with an exponent that YAML 1.1 reads as text: no dot in the mantissa or no sign in the exponent.
EXPONENT_TEXT = re.compile(
    r"(?P<sign>[-+]?)(?:(?P<whole>[0-9]+)(?:\.(?P<frac>[0-9]*))?|\.(?P<frac_only>[0-9]+))"
    r"(?P<e>[eE])(?P<esign>[-+]?)(?P<digits>[0-9]+)",
    re.ASCII,
)
_STR_TAG = "tag:yaml.org,2002:str"


def exponent_fix(text: str) -> str:
    """How to write exponent text so that YAML reads a number: ``1e-3`` -> ``write 1.0e-3 (...)``."""
    m = EXPONENT_TEXT.fullmatch(text)
    if m is None:
        raise ValueError(f"not exponent text: {text!r}")
    frac = m["frac"] or m["frac_only"] or "0"
    number = f"{m['sign']}{m['whole'] or '0'}.{frac}{m['e']}{m['esign'] or '+'}{m['digits']}"
    return f"write {number} (YAML 1.1 reads {text} as text)"


def check_size(size: int, file: str | None, at_least: bool = False) -> None:
    """``SpaceError`` naming the file, its size and the limit when ``size`` bytes exceed ``MAX_FILE_BYTES``."""
    if size > MAX_FILE_BYTES:
        shown = f"{'at least ' if at_least else ''}{size:,} bytes"
        limit = f"{MAX_FILE_BYTES:,} bytes ({MAX_FILE_BYTES >> 20} MiB)"
        raise SpaceError([Problem("", f"file is {shown}; space files are limited to {limit}", file)])


@dataclass
class Graph:
    """What the walk over the composed YAML graph learned, before any Python data is built."""

    lines: dict[tuple[Any, ...], int] = field(default_factory=dict)
    duplicates: list[tuple[tuple[Any, ...], int, str]] = field(default_factory=list)
    exponent_text: dict[tuple[Any, ...], str] = field(default_factory=dict)
    visits: int = 0


def _walk(root: yaml.Node, file: str | None) -> Graph:
    """Key path -> 1-based line, duplicate keys (which construction silently merges) and plain exponent text.

    Aliases make the graph a DAG (or a cycle): every visit counts against ``MAX_NODES`` and
    the depth against ``MAX_NESTING``, so a "billion laughs" stops here, in linear memory,
    before anything is expanded.
    """
    graph = Graph()

    def visit(node: yaml.Node, path: tuple[Any, ...], depth: int) -> None:
        graph.visits += 1
        line = node.start_mark.line + 1
        if graph.visits > MAX_NODES:
            why = f"more than {MAX_NODES:,} YAML nodes (counting every use of an alias); a space file needs far fewer"
            raise SpaceError([Problem(format_path(path), why, file, line)])
        if depth > MAX_NESTING:
            raise SpaceError([Problem(format_path(path), f"nested deeper than {MAX_NESTING} levels", file, line)])
        graph.lines.setdefault(path, line)
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.start_mark)
                if key in seen:
                    graph.duplicates.append((path, key_node.start_mark.line + 1, key))
                seen.add(key)
                graph.lines[path + (key,)] = key_node.start_mark.line + 1
                visit(value_node, path + (key,), depth + 1)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                visit(item, path + (i,), depth + 1)
        elif node.style is None and node.tag == _STR_TAG and EXPONENT_TEXT.fullmatch(node.value):
            graph.exponent_text[path] = node.value

    visit(root, (), 0)
    return graph


def load_yaml(text: str, file: str | None) -> tuple[Any, Graph]:
    """Parse once: compose the node graph, walk it under the limits, then construct the data from it."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, Graph()
        graph = _walk(root, file)
        return loader.construct_document(root), graph
    finally:
        loader.dispose()


def format_path(path: tuple[Any, ...]) -> str:
    out = ""
    for seg in path:
        if isinstance(seg, int):
            out += f"[{seg}]"
        else:
            out += f".{seg}" if out else str(seg)
    return out
