"""Loading and validation: every error names the file, the line, the key path and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.spaces import (
    Choice,
    IntRange,
    LogUniform,
    QLogUniform,
    SearchSpace,
    SpaceError,
    load_study,
    load_version,
    load_with_lineage,
    parse_version,
)
from tests.spacefiles import MINIMAL, MINIMAL_HEAD, SPACES, write_space


def problems(text: str, file: str = "f.yaml") -> list[str]:
    with pytest.raises(SpaceError) as info:
        parse_version(text, file)
    return [str(p) for p in info.value.problems]


def with_params(params: str, head: str = MINIMAL_HEAD) -> str:
    return head + "params:\n" + params


@pytest.mark.parametrize("path", sorted(SPACES.glob("*/v*.yaml")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_spaces_load(path: Path) -> None:
    v = load_version(path)
    assert v.study == path.parent.name and f"v{v.version}.yaml" == path.name
    assert len(v.content_hash) == 64


def test_minimal_document() -> None:
    v = parse_version(MINIMAL)
    assert v.study == "demo" and v.version == 1 and v.parent is None
    assert v.metric.name == "loss" and v.metric.mode == "min"
    assert v.schedule.scheduler == "asha" and v.resources.cpu == 1


def test_log_bound_zero_names_file_and_key(tmp_path: Path) -> None:
    path = write_space(tmp_path, with_params("  lr: {loguniform: [0, 1]}\n"))
    with pytest.raises(SpaceError) as info:
        load_version(path)
    text = str(info.value)
    assert str(path) in text and "params.lr" in text and "positive" in text
    assert info.value.problems[0].line == 6


def test_typo_in_top_level_key_gets_suggestion() -> None:
    (msg,) = problems(MINIMAL + "schedul: {max_epochs: 3}\n")
    assert "unknown key 'schedul'" in msg and "did you mean 'schedule'" in msg


def test_typo_in_distribution_gets_suggestion() -> None:
    (msg,) = problems(with_params("  x: {unifrom: [0, 1]}\n"))
    assert "params.x" in msg and "did you mean 'uniform'" in msg


def test_typo_in_modifier_gets_suggestion() -> None:
    (msg,) = problems(with_params("  x: {uniform: [0, 1], defualt: 0.5}\n"))
    assert "params.x.defualt" in msg and "did you mean 'default'" in msg


def test_nested_error_path() -> None:
    text = with_params(
        "  optimizer:\n    choice:\n      - {name: adam}\n      - {name: sgd, momentum: {uniform: [0.99, 0.8]}}\n"
    )
    (msg,) = problems(text)
    assert "params.optimizer.choice[1].momentum.uniform" in msg and "low < high" in msg


def test_all_problems_reported_at_once() -> None:
    text = with_params("  a: {uniform: [1, 0]}\n  b: {int: [1.5, 3]}\n  c: {choice: []}\n")
    msgs = problems(text)
    assert len(msgs) == 3
    assert any("params.a.uniform" in m for m in msgs)
    assert any("params.b.int" in m and "integer" in m for m in msgs)
    assert any("params.c.choice" in m and "non-empty" in m for m in msgs)


@pytest.mark.parametrize(
    ("spec", "expect"),
    [
        ("{uniform: [0, 1, 2]}", "expected [low, high]"),
        ("{uniform: [0, .inf]}", "finite"),
        ("{uniform: [0, 1e-3]}", "write 1.0e-3 (YAML 1.1 reads 1e-3 as text)"),
        ("{quniform: [0, 1, 0.3]}", "multiple of q"),
        ("{qloguniform: [10, 100, 16]}", "multiples of q"),
        ("{int: [1, 10], step: 4}", "multiple of step"),
        ("{int: [1, 10], log: true, step: 3}", "cannot have a step"),
        ("{uniform: [0, 1], default: 2}", "default 2 is not a value"),
        ("{uniform: [0, 1], limits: [0.5, 2]}", "inside limits"),
        ("{choice: [a, b], default: c}", "default"),
        ("{choice: [a, a]}", "appears twice"),
        ("{choice: [{n: 1}, {n: 1}]}", "cannot be told apart"),
        ("{choice: [{uniform: [0, 1]}]}", "looks like a distribution"),
        ("[1, 2]", "ambiguous"),
        ("{uniform: [0, 1], choice: [1]}", "exactly one distribution"),
    ],
)
def test_bad_parameter(spec: str, expect: str) -> None:
    msgs = problems(with_params(f"  x: {spec}\n"))
    assert any(expect in m for m in msgs), msgs
    assert all("f.yaml" in m for m in msgs)


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("", "empty"),
        ("- a\n- b\n", "expected a mapping"),
        ("study: [x\n", "not valid YAML"),
        (MINIMAL.replace("version: 1", "version: 0"), "version must be an integer >= 1"),
        (MINIMAL.replace("version: 1", "version: 2"), "must name its parent"),
        (MINIMAL.replace("version: 1", "version: 2\nparent: 3"), "earlier version"),
        (MINIMAL.replace("mode: min", "mode: best"), "expected min or max"),
        (MINIMAL + "resources: {gpu: 1.5}\n", "fraction below 1"),
        (MINIMAL + "schedule: {max_epochs: 2, grace_period: 3}\n", "must not exceed"),
        (MINIMAL + "schedule: {max_epochs: 27, brackets: 5}\n", "brackets (5) must not exceed 4 here"),
        (MINIMAL + "schedule: {scheduler: fifo, brackets: 2}\n", "needs scheduler: asha"),
        (MINIMAL + "schedule: {brackets: 0}\n", "brackets"),
        (MINIMAL + "fixed: {x: 1}\n", "both fixed and a searched"),
        (MINIMAL + "study: again\n", "appears twice"),
        (MINIMAL.replace("  x:", "  x.y:"), "not a valid name"),
        (MINIMAL.replace("  x:", "  step:"), "reserved word"),
        (MINIMAL.replace("trainable: analytic\n", ""), "missing required key 'trainable'"),
        (MINIMAL + "search: {algorithm: 2}\n", "expected a searcher name"),
        (MINIMAL + "search: {repeats: 1}\n", "repeats must be true or false, got 1"),
        (MINIMAL + "search: {algorithm: optuna-tpe}\n", "expected a searcher name"),
    ],
)
def test_bad_document(text: str, expect: str) -> None:
    msgs = problems(text)
    assert any(expect in m for m in msgs), msgs


@pytest.mark.parametrize("name", ["tpe", "random", "optuna_tpe", "my_searcher"])
def test_any_searcher_name_loads(name: str) -> None:
    """Which searchers exist is the engine's registry's to say (``space validate`` asks it), not the loader's."""
    assert parse_version(MINIMAL + f"search: {{algorithm: {name}}}\n").search.algorithm == name


def test_parsed_types() -> None:
    v = parse_version(
        with_params(
            "  lr: {loguniform: [1.0e-4, 1.0e-1], default: 1.0e-3}\n"
            "  width: {qloguniform: [16, 256, 16]}\n"
            "  depth: {int: [2, 8], step: 2}\n"
            "  opt:\n    choice: [{name: adam}, {name: sgd, m: {uniform: [0.5, 0.9]}}]\n"
            "  act: relu\n"
        )
    )
    p = v.params.params
    assert isinstance(p["lr"], LogUniform) and p["lr"].default == 1e-3
    assert isinstance(p["width"], QLogUniform) and p["width"].q == 16
    assert isinstance(p["depth"], IntRange) and p["depth"].steps == 3
    assert isinstance(p["opt"], Choice) and isinstance(p["opt"].options[1], SearchSpace)
    assert p["act"].value == "relu"


def test_file_name_and_folder_must_agree(tmp_path: Path) -> None:
    path = write_space(tmp_path, MINIMAL, name="v3.yaml")
    with pytest.raises(SpaceError, match=r"named v3\.yaml but says version 1"):
        load_version(path)
    path = write_space(tmp_path, MINIMAL, study="other")
    with pytest.raises(SpaceError, match="folder 'other' but says study 'demo'"):
        load_version(path)


def test_missing_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(SpaceError, match="no such file"):
        load_version(tmp_path / "nope.yaml")
    bad = tmp_path / "bin.yaml"
    bad.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(SpaceError, match="not UTF-8"):
        load_version(bad)


def test_lineage_resolved(tmp_path: Path) -> None:
    write_space(tmp_path, MINIMAL)
    v2 = write_space(tmp_path, MINIMAL.replace("version: 1", "version: 2\nparent: 1"), name="v2.yaml")
    version, lineage = load_with_lineage(v2)
    assert [v.version for v in lineage] == [1, 2] and version is lineage[-1]
    study = load_study(v2.parent)
    assert study.latest.version == 2


def test_lineage_problems(tmp_path: Path) -> None:
    write_space(tmp_path, MINIMAL)
    write_space(tmp_path, MINIMAL.replace("version: 1", "version: 3\nparent: 2"), name="v3.yaml")
    write_space(
        tmp_path, MINIMAL.replace("version: 1", "version: 4\nparent: 1").replace("analytic", "other"), name="v4.yaml"
    )
    write_space(tmp_path, MINIMAL, name="notes.yaml")
    with pytest.raises(SpaceError) as info:
        load_study(write_space(tmp_path, MINIMAL).parent)
    text = str(info.value)
    assert "parent v2 not found" in text and "changes the trainable" in text and "must be named v<N>.yaml" in text
