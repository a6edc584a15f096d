"""Diffs between versions, classified the way a reviewer reads them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from orchestrator.spaces import SpaceError, load_version, parse_version
from orchestrator.spaces.diff import diff, render
from tests.spacefiles import ROOT, SPACES, space_doc


def head(v: int = 1) -> str:
    """The head of version ``v`` of study s (trainable t, metric m): a test appends its sections."""
    return space_doc("s", v, trainable="t", metric="{name: m, mode: min}", params=None, fixed=None)


def version(params: str, v: int = 1, extra: str = ""):
    return parse_version(head(v) + extra + "params:\n" + params)


def kinds(old: str, new: str, extra_old: str = "", extra_new: str = "") -> dict[str, str]:
    changes = diff(version(old, 1, extra_old), version(new, 2, extra_new))
    return {c.path: c.kind for c in changes}


def test_range_changes() -> None:
    old = "  a: {uniform: [0, 1]}\n  b: {uniform: [0, 1]}\n  c: {uniform: [0, 1]}\n  d: {uniform: [0, 1]}\n"
    new = (
        "  a: {uniform: [0.2, 0.8]}\n  b: {uniform: [0, 2]}\n  c: {uniform: [0.5, 1.5]}\n  d: {loguniform: [0.1, 1]}\n"
    )
    assert kinds(old, new) == {"a": "narrowed", "b": "widened", "c": "shifted", "d": "changed-kind"}


def test_added_removed_choices_and_defaults() -> None:
    old = "  a: {choice: [1, 2, 3]}\n  gone: {int: [1, 3]}\n  f: relu\n"
    new = "  a: {choice: [2, 3, 4], default: 2}\n  new: {uniform: [0, 1], default: 0.5}\n  f: tanh\n"
    all_changes = diff(version(old), version(new, 2))
    changes = {c.path: c for c in all_changes if c.kind != "default"}
    assert changes["a"].kind == "choices" and changes["a"].detail == "+4, -1"
    assert changes["gone"].kind == "removed"
    assert changes["new"].kind == "added" and "default 0.5" in changes["new"].detail
    assert changes["f"].kind == "fixed"
    assert [c.kind for c in diff(version(old), version(new, 2)) if c.path == "a"] == ["choices", "default"]


def test_nested_params_addressed_by_option_label() -> None:
    old = "  opt:\n    choice: [{name: adam}, {name: sgd, momentum: {uniform: [0.5, 0.99]}}]\n"
    new = "  opt:\n    choice: [{name: sgd, momentum: {uniform: [0.8, 0.99]}}, {name: adam}]\n"
    assert kinds(old, new) == {"opt": "choices", "opt[sgd].momentum": "narrowed"}


def test_settings_changes() -> None:
    p = "  a: {uniform: [0, 1]}\n"
    got = kinds(p, p, "schedule: {max_epochs: 3}\n", "schedule: {max_epochs: 5}\nresources: {gpu: 0.5}\n")
    assert got == {"schedule.max_epochs": "setting", "resources.gpu": "setting"}


def test_identical_versions_have_no_changes() -> None:
    p = "  a: {uniform: [0, 1]}\n"
    assert diff(version(p), version(p, 2)) == []
    assert "no changes" in render(version(p), version(p, 2), [])


def test_shipped_v1_v2_render() -> None:
    v1, v2 = load_version(SPACES / "unet_dstl/v1.yaml"), load_version(SPACES / "unet_dstl/v2.yaml")
    changes = diff(v1, v2)
    by = {c.path: c.kind for c in changes}
    assert by["lr"] == "narrowed" and by["dropout"] == "widened" and by["weight_decay"] == "added"
    text = render(v1, v2, changes)
    assert text.splitlines()[0].startswith("unet_dstl v1 -> v2")
    md = render(v1, v2, changes, "markdown")
    assert "| narrowed | `lr` |" in md
    doc = json.loads(render(v1, v2, changes, "json"))
    assert doc["new"]["hash"] == v2.content_hash and len(doc["changes"]) == len(changes)


def test_settings_written_as_int_or_float_are_no_change() -> None:
    old = parse_version(
        space_doc(
            "s",
            1,
            resources="{cpu: 1, gpu: 0}",
            schedule="{reduction_factor: 3}",
            params="  x: {uniform: [0.0, 1.0], default: 1}\n",
        )
    )
    new = parse_version(
        space_doc(
            "s",
            2,
            resources="{cpu: 1.0}",
            schedule="{reduction_factor: 3.0}",
            params="  x: {uniform: [0.0, 1.0], default: 1.0}\n",
        )
    )
    assert diff(old, new) == []
    flipped = parse_version(space_doc("s", 2, resources="{cpu: 2}", params="  x: {uniform: [0.0, 1.0]}\n"))
    assert {(c.kind, c.path) for c in diff(old, flipped)} == {("setting", "resources.cpu"), ("default", "x")}


def test_versions_of_two_studies_have_no_diff(tmp_path) -> None:
    first, second = tmp_path / "first.yaml", tmp_path / "second.yaml"
    text = head() + "params:\n  a: {uniform: [0, 1]}\n"
    first.write_text(text)
    second.write_text(text.replace("study: s", "study: other"))
    with pytest.raises(SpaceError) as e:
        diff(load_version(first), load_version(second))
    assert str(e.value) == (
        f"{second}: study: 'other', but {first} is study 's': a diff compares two versions of one study"
    )
    r = subprocess.run(
        [sys.executable, "-m", "orchestrator", "space", "diff", str(first), str(second)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1 and r.stderr == f"error: {e.value}\n" and r.stdout == ""
