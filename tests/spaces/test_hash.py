"""The content hash ignores formatting and key order, and changes with any range or choice."""

from __future__ import annotations

import re

import pytest

from orchestrator.spaces import load_version, parse_version
from tests.spacefiles import SPACES, space_doc

BASE = space_doc(
    "s",
    2,
    schedule="{max_epochs: 5, grace_period: 1}",
    params="""\
  x: {uniform: [-1.0, 1.0], default: 0.0}
  lr: {loguniform: [1.0e-4, 1.0e-1]}
  n: {int: [1, 4]}
  opt:
    choice:
      - {name: adam}
      - {name: sgd, momentum: {uniform: [0.8, 0.99]}}
""",
)

REFORMATTED = """\
# the same space, written differently
params:
  opt: {choice: [{name: adam}, {momentum: {uniform: [0.8, 0.99]}, name: sgd}]}
  n:
    int: [1, 4]
  lr: {loguniform: [0.0001, 0.1]}
  x:
    default: 0
    uniform: [-1, 1]
fixed:
  function: quadratic
schedule: {grace_period: 1, max_epochs: 5}
metric:
  mode: min
  name: loss
trainable: analytic
parent: 1
version: 2
study: s
notes: formatting, comments and notes do not change the hash
"""


def test_hash_ignores_order_formatting_comments_and_notes() -> None:
    assert parse_version(BASE).content_hash == parse_version(REFORMATTED).content_hash


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("[-1.0, 1.0], default", "[-1.0, 0.9], default"),
        ("[1.0e-4, 1.0e-1]", "[1.0e-4, 2.0e-1]"),
        ("loguniform", "uniform"),
        ("int: [1, 4]", "int: [1, 5]"),
        ("{name: adam}", "{name: adamw}"),
        ("[0.8, 0.99]", "[0.8, 0.98]"),
        ("default: 0.0", "default: 0.5"),
        ("function: quadratic", "function: branin"),
        ("max_epochs: 5", "max_epochs: 6"),
        ("mode: min", "mode: max"),
        ("grace_period: 1}", "grace_period: 1, brackets: 2}"),
    ],
)
def test_hash_changes_with_any_range_or_choice(old: str, new: str) -> None:
    assert old in BASE
    assert parse_version(BASE).content_hash != parse_version(BASE.replace(old, new, 1)).content_hash


def test_hash_ignores_version_numbers() -> None:
    """Two files with the same content describe the same space, whatever they are numbered."""
    renumbered = re.sub("version: 2\nparent: 1", "version: 3\nparent: 2", BASE)
    assert parse_version(BASE).content_hash == parse_version(renumbered).content_hash


# Computed before the space model was reworked; a shipped file's hash must never change silently,
# or every tracked trial of its study would stop matching its version.
SHIPPED_HASHES = {
    "convnet_digits/v1.yaml": "83c7b79d9679b95a6be2161ed532daad8a9d1d6ae38aec3928b1c44a2b55a783",
    "unet_dstl/v1.yaml": "bd880075adac588c11c8b3e6e8c0678cc5f10fa916ad0691bf7ae1df1521b51a",
    "unet_dstl/v2.yaml": "bc657439526a44052fcc7de6fb4477f8ce42e27d6053a6948b270cfc97f4cf0f",
    "unet_synthetic/v1.yaml": "603e27e32248bce008ded2a95ef7f8a7cf1b5cd8a5f8e212b999c32c59762629",
}


def test_shipped_hashes_are_unchanged() -> None:
    shipped = {str(p.relative_to(SPACES)): load_version(p).content_hash for p in sorted(SPACES.glob("*/v*.yaml"))}
    assert shipped == SHIPPED_HASHES


def test_a_setting_at_its_default_keeps_the_hash_it_had_before_the_setting_existed() -> None:
    """``schedule.brackets``, ``search.liar`` and ``search.repeats`` came after hashes were recorded: written at
    their default, a file hashes as one that does not name them; set otherwise, the hash changes."""
    search = "search: {liar: worst, repeats: false}\n"
    spelled_out = BASE.replace("grace_period: 1}", "grace_period: 1, brackets: 1}") + search
    assert parse_version(spelled_out).content_hash == parse_version(BASE).content_hash
    repeating = parse_version(BASE + "search: {repeats: true}\n")
    assert repeating.search.repeats and repeating.content_hash != parse_version(BASE).content_hash
