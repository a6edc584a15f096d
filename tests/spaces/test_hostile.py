"""Hostile and careless space files: size, alias and nesting limits, exponent text, and carry fuzzing."""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.spaces import SpaceError, ValueNotInSpace, load_version, parse_version
from orchestrator.spaces.carry import carry, fit
from orchestrator.spaces.check import validate_paths
from orchestrator.spaces.trials import RecordedTrial
from orchestrator.spaces.yamlsafe import EXPONENT_TEXT, MAX_CHOICE_DEPTH, MAX_FILE_BYTES, MAX_NESTING, MAX_NODES
from tests.plugin import examples
from tests.spacefiles import MINIMAL, MINIMAL_HEAD, ROOT
from tests.spaces.strategies import FUZZ, as_version, documents, random_draw, space_docs, to_yaml

MEMORY_LIMIT = 1 << 30


def one_problem(text: str, file: str = "f.yaml") -> str:
    with pytest.raises(SpaceError) as info:
        parse_version(text, file)
    assert len(info.value.problems) == 1, info.value
    return str(info.value.problems[0])


# --------------------------------------------------------------------------- size


def test_a_file_over_the_size_limit_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "v1.yaml"
    path.write_text(MINIMAL + "notes: " + "x" * MAX_FILE_BYTES + "\n")
    size = path.stat().st_size
    with pytest.raises(SpaceError) as info:
        load_version(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and f"{size:,} bytes" in message and f"{MAX_FILE_BYTES:,} bytes" in message


def test_text_over_the_size_limit_is_refused_and_a_file_at_the_limit_loads() -> None:
    over = MINIMAL + "notes: " + "ü" * (MAX_FILE_BYTES // 2) + "\n"  # fewer characters than bytes
    assert len(over) < MAX_FILE_BYTES < len(over.encode())
    assert "limited to" in one_problem(over)
    at_limit = MINIMAL + "notes: " + "x" * (MAX_FILE_BYTES - len(MINIMAL) - len("notes: \n")) + "\n"
    assert len(at_limit.encode()) == MAX_FILE_BYTES
    assert len(parse_version(at_limit).notes) > MAX_FILE_BYTES - 200


# --------------------------------------------------------------------------- aliases and nesting


def alias_bomb(levels: int = 9, width: int = 9, merge: bool = False) -> str:
    """A "billion laughs": each level names the one below ``width`` times (``width ** levels`` leaves)."""
    if merge:
        lines = ["m0: &m0 {k: 1}"] + [
            f"m{i}: &m{i} {{<<: [{', '.join([f'*m{i - 1}'] * width)}]}}" for i in range(1, levels)
        ]
    else:
        lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"] + [
            f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)
        ]
    return MINIMAL + "\n".join(lines) + "\n"


@pytest.mark.parametrize("merge", [False, True], ids=["aliases", "merge keys"])
def test_an_alias_bomb_stops_at_the_node_limit_with_a_located_error(merge: bool) -> None:
    start = time.perf_counter()
    message = one_problem(alias_bomb(merge=merge))
    assert time.perf_counter() - start < 5
    assert message.startswith("f.yaml:") and f"more than {MAX_NODES:,} YAML nodes" in message


def test_a_file_just_under_the_node_limit_loads() -> None:
    width = 300  # the grid alone is 1 + 300 * (1 + 300) = 90,301 visits, under 100,000
    row = f"&row [{', '.join(['x'] * width)}]"
    text = MINIMAL.replace(
        "{function: quadratic}", f"{{function: quadratic, row: {row}, grid: [{', '.join(['*row'] * width)}]}}"
    )
    grid = parse_version(text).fixed["grid"]
    assert len(grid) == width and all(r == ["x"] * width for r in grid)


def test_a_recursive_alias_stops_at_the_nesting_limit() -> None:
    assert f"nested deeper than {MAX_NESTING} levels" in one_problem(MINIMAL + "loop: &l [*l]\n")


def test_space_validate_survives_an_alias_bomb_under_a_memory_limit(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb())

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))

    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator", "space", "validate", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=limit_memory,
    )
    elapsed = time.perf_counter() - start
    assert result.returncode == 1, result.stderr
    problem, summary = result.stderr.strip().splitlines()
    assert problem.startswith(f"{path}:") and "YAML nodes" in problem
    assert summary == "1 problem(s) in 1 of 1 file(s)"
    assert elapsed < 5, f"took {elapsed:.1f} s"


def nested_choices(levels: int) -> str:
    """A space whose choice sub-spaces are ``levels`` deep: ``c.choice[0].c.choice[0]...x``."""
    space: dict[str, Any] = {"x": {"uniform": [0.0, 1.0]}}
    for _ in range(levels):
        space = {"c": {"choice": [{"name": "deeper", **space}, {"name": "stop"}]}}
    return to_yaml({**yaml.safe_load(MINIMAL_HEAD), "params": space})


@pytest.mark.parametrize("algorithm", ["tpe", "random"])
def test_choices_nested_to_the_limit_validate_and_searchers_suggest_from_them(tmp_path: Path, algorithm: str) -> None:
    from orchestrator.engine.searchers import searcher_class

    path = tmp_path / "deep.yaml"
    path.write_text(nested_choices(MAX_CHOICE_DEPTH))
    report = validate_paths([path])
    assert report.ok, [str(p) for p in report.problems]
    version = report.valid[0]
    config = searcher_class(algorithm)(version, [], seed=0).suggest("t1")
    assert version.params.contains({name: config[name] for name in version.params.params}) is None


def test_choices_nested_past_the_limit_are_one_located_error() -> None:
    message = one_problem(nested_choices(MAX_CHOICE_DEPTH + 1))
    deepest = ".".join(["c.choice[0]"] * MAX_CHOICE_DEPTH) + ".c.choice"
    assert f"params.{deepest}: choice sub-spaces are nested more than {MAX_CHOICE_DEPTH} levels" in message


# --------------------------------------------------------------------------- exponent text


@pytest.mark.parametrize(
    ("spec", "path", "text", "fix"),
    [
        ("{choice: [1e-3, 1.0e-4]}", "params.lr.choice[0]", "1e-3", "1.0e-3"),
        ("{choice: [0.1, 5E-4]}", "params.lr.choice[1]", "5E-4", "5.0E-4"),
        ("{choice: [1e+3, 10]}", "params.lr.choice[0]", "1e+3", "1.0e+3"),
        ("{choice: [0.1, 0.01], default: 1e-1}", "params.lr.default", "1e-1", "1.0e-1"),
        ("{fixed: [1, 2.5e3]}", "params.lr.fixed[1]", "2.5e3", "2.5e+3"),
        ("1e-3", "params.lr", "1e-3", "1.0e-3"),
        ("{choice: [{name: a, w: 3e-2}, {name: b}]}", "params.lr.choice[0].w", "3e-2", "3.0e-2"),
    ],
)
def test_exponent_text_is_an_error_naming_the_fix(spec: str, path: str, text: str, fix: str) -> None:
    message = one_problem(MINIMAL.replace("  x: {uniform: [-1.0, 1.0]}\n", f"  lr: {spec}\n"))
    assert f" {path}: {text!r} is text, not a number: write {fix} (YAML 1.1 reads {text} as text)" in message
    assert isinstance(yaml.safe_load(fix), float) and yaml.safe_load(fix) == float(text)


def test_exponent_text_in_the_fixed_section_is_an_error_and_quoted_text_is_not() -> None:
    assert "fixed.lr: '1e-3' is text" in one_problem(MINIMAL.replace("{function: quadratic}", "{lr: 1e-3}"))
    quoted = MINIMAL.replace("{function: quadratic}", "{lr: '1e-3'}").replace(
        "[-1.0, 1.0]}", '[-1.0, 1.0]}\n  t: "5E-4"'
    )
    version = parse_version(quoted)
    assert version.fixed["lr"] == "1e-3" and version.params.params["t"].value == "5E-4", "quoting says: text"


@settings(max_examples=examples(300), deadline=None)
@given(st.from_regex(EXPONENT_TEXT, fullmatch=True))
def test_every_exponent_text_is_flagged_with_a_fix_that_reads_as_its_number(text: str) -> None:
    data = yaml.safe_load(f"v: {text}")["v"]
    if not isinstance(data, str):
        return  # YAML read a number: nothing to flag
    message = one_problem(MINIMAL.replace("[-1.0, 1.0]}", f"[-1.0, 1.0]}}\n  t: {{choice: [{text}, b]}}"))
    fix = message.split("write ", 1)[1].split(" ", 1)[0]
    number = yaml.safe_load(fix)
    assert isinstance(number, float) and number == float(text), (text, fix)


# --------------------------------------------------------------------------- carry fuzzing


@st.composite
def prior_trials(draw) -> list[RecordedTrial]:
    """Configurations of another random space or random documents, with random outcomes."""
    old = as_version(draw(space_docs(modifiers=True))).params
    rnd = draw(st.randoms(use_true_random=False))
    configs = st.builds(lambda: old.build(random_draw(rnd))) | documents
    values = st.none() | st.floats(allow_nan=True, allow_infinity=True)
    trial = st.builds(RecordedTrial, configs, values, st.sampled_from(["FINISHED", "FAILED"]), st.integers(1, 3))
    return draw(st.lists(trial, max_size=6))


@FUZZ
@given(st.data())
def test_carry_of_random_configs_into_random_spaces_only_raises_value_not_in_space(data: st.DataObject) -> None:
    version = as_version(data.draw(space_docs(modifiers=True)))
    trials = data.draw(prior_trials())
    report = carry(trials, version)
    assert report.total == len(trials)
    for config, _ in report.carried:
        assert version.params.contains(config) is None, config
    for trial in trials:
        try:
            fit(version.params, trial.config)
        except ValueNotInSpace as e:
            assert e.path and e.reason and e.category
