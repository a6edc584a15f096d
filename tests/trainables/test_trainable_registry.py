"""The registry and the specs: names, lazy imports, config validation with readable errors, layout."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import trainables
from trainables import TrainableConfigError, TrainableSpec, validate_config
from trainables.api import SHARED_LOOP_ENTRY, load_object
from trainables.config import resolve
from trainables.costs import SOMETIMES

ROOT = Path(__file__).resolve().parents[2]


def test_every_family_and_tiny_variant_is_registered():
    assert {"analytic", "convnet", "convnet_tiny", "unet", "unet_tiny"} <= set(trainables.names())
    for name in trainables.names():
        spec = trainables.get(name)
        assert "epoch" in spec.metrics
        assert callable(spec.load())


def test_registry_and_spec_modules_do_not_import_torch():
    code = (
        "import sys, trainables, trainables.registry, trainables.convnet.spec, trainables.unet.spec\n"
        "from trainables import names, get, validate_config\n"
        "for n in names(): get(n)\n"
        "validate_config('unet', {'depth': 3})\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_unknown_key_names_key_trainable_and_suggestion():
    with pytest.raises(TrainableConfigError) as info:
        validate_config("convnet", {"filtres": 20})
    message = str(info.value)
    assert "'convnet'" in message and "filtres" in message and "'filters'" in message
    assert info.value.key == "filtres"


def test_reserved_keys_are_accepted_everywhere():
    for name in trainables.names():
        validate_config(name, {"max_epochs": 3, "seed": 1, **_tiny(name)})


def test_missing_required_key():
    with pytest.raises(TrainableConfigError, match="function: required"):
        validate_config("analytic", {"x": 1.0})


def test_defaults_are_filled_from_the_spec():
    cfg = resolve("unet_tiny", {"depth": 3})
    assert cfg["depth"] == 3 and cfg["base_filters"] == 4 and cfg["max_epochs"] >= 1


@pytest.mark.parametrize(
    ("name", "config", "key"),
    [
        ("convnet_tiny", {"activation": "gelu"}, "activation"),
        ("convnet_tiny", {"optimizer": {"name": "adam", "beta": 0.9}}, "optimizer.beta"),
        ("convnet_tiny", {"optimizer": {"name": "rmsprop"}}, "optimizer.name"),
        ("convnet_tiny", {"fc_width": 12.5}, "fc_width"),
        ("convnet_tiny", {"expand_shifts": "yes"}, "expand_shifts"),
        ("convnet_tiny", {"conv_layers": 4}, "conv_layers"),
        ("convnet_tiny", {"data": "cifar"}, "data"),
        ("unet_tiny", {"classes": ["buildings", "boats"]}, "classes"),
        ("unet_tiny", {"per_class": "roads"}, "per_class"),
        ("unet_tiny", {"patch": 30}, "patch"),
        ("unet_tiny", {"loss": "focal"}, "loss"),
        ("analytic", {"function": "rosenbrock"}, "function"),
    ],
)
def test_bad_values_are_rejected_before_training(name, config, key, reporter):
    base = {"function": "quadratic"} if name == "analytic" else {}
    with pytest.raises(TrainableConfigError) as info:
        trainables.create(name)({**base, **config, "max_epochs": 1}, reporter)
    assert info.value.key == key
    assert f"'{name}'" in str(info.value)
    assert reporter.reports == []


def test_patch_error_tells_the_fix(reporter):
    with pytest.raises(TrainableConfigError, match=r"patch 60 is not divisible by 2\*\*depth=16; use 64"):
        trainables.create("unet")({"patch": 60, "depth": 4}, reporter)


@pytest.mark.parametrize("path", sorted((ROOT / "search_spaces").glob("*/v*.yaml")))
def test_every_space_file_uses_keys_its_trainable_accepts(path):
    doc = yaml.safe_load(path.read_text())
    keys = {**doc.get("fixed", {}), **{k: None for k in doc.get("params", {})}}
    validate_config(doc["trainable"], keys)


ONLY_SOME_CONFIGURATIONS = {"analytic": ("f1", "f2")}  # reported by the functions of analytic.MULTI_OBJECTIVE


def _tiny(name: str) -> dict:
    """The quick config every spec derives for tests (``TrainableSpec.tiny``)."""
    return dict(trainables.get(name).tiny)


def _trains(name: str) -> list[pytest.MarkDecorator]:
    """``slow`` for a family on the shared loop (a PyTorch model trained on its data), none for the others."""
    return [pytest.mark.slow] if trainables.get(name).task else []


@pytest.mark.parametrize("name", [pytest.param(n, marks=_trains(n)) for n in trainables.names()])
def test_contract_reports_each_epoch_and_resumes(name, make_reporter):
    spec = trainables.get(name)
    train = spec.load()
    first = make_reporter()
    train({**_tiny(name), "max_epochs": 2, "seed": 0}, first)
    assert first.epochs == [1, 2]
    # latencies when a search names them, GPU memory on CUDA; analytic's f1 and f2 from its two-objective functions
    always = set(spec.metrics) - set(SOMETIMES) - set(ONLY_SOME_CONFIGURATIONS.get(name, ()))
    for report in first.reports:
        assert always <= set(report), always - set(report)
        assert all(isinstance(v, int | float) for v in report.values())
    assert len(first.checkpoints) == 2
    resumed = make_reporter(restore=first.checkpoints[0])
    train({**_tiny(name), "max_epochs": 3, "seed": 0}, resumed)
    assert resumed.epochs == [2, 3]


# ----------------------------------------------------------------------------- layout


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            prefix = "." * node.level + (node.module or "")
            found |= {prefix} if node.module else {prefix + alias.name for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return found


def test_the_registry_is_a_leaf():
    imported = _imported_modules(ROOT / "trainables" / "registry.py")
    assert {m for m in imported if m.startswith(".") or m.startswith("trainables")} == {".api"}


@pytest.mark.parametrize("family", ["convnet", "unet"])
def test_each_family_states_its_defaults_once(family):
    spec_module = importlib.import_module(f"trainables.{family}.spec")
    assert trainables.get(family).optional == spec_module.DEFAULTS
    tiny = trainables.get(f"{family}_tiny")
    assert tiny.optional == {**spec_module.DEFAULTS, **spec_module.TINY} and tiny.task == trainables.get(family).task
    shape = {"convnet": "trainables.convnet.model:ConvNetShape", "unet": "trainables.unet.model:UNetShape"}[family]
    fields = dataclasses.fields(load_object(shape))
    assert all(f.default is dataclasses.MISSING for f in fields), "the model's shape restates defaults"


def test_torch_families_share_the_loop_entry():
    for name in trainables.names():
        spec = trainables.get(name)
        if spec.task:
            train = spec.load()
            assert train.func is load_object(SHARED_LOOP_ENTRY) and train.args == (name,)


def test_a_spec_is_either_self_contained_or_on_the_loop_and_checks_its_tiny_keys():
    with pytest.raises(ValueError, match="either entry"):
        TrainableSpec(name="x", metrics=("epoch",), entry="m:f", task="m:g")
    with pytest.raises(ValueError, match="either entry"):
        TrainableSpec(name="x", metrics=("epoch",))
    with pytest.raises(ValueError, match=r"tiny sets keys it does not accept: \['filtres'\]"):
        TrainableSpec(name="x", metrics=("epoch",), task="m:g", optional={"filters": 1}, tiny={"filtres": 2})
    with pytest.raises(ValueError, match=r"throughput\['small'\] sets keys"):
        TrainableSpec(name="x", metrics=("epoch",), task="m:g", throughput={"small": {"depth": 2}})


def test_the_trainables_contract_names_every_module_but_the_api() -> None:
    """import-linter's contract lists its source modules one by one: a new module of ``trainables`` joins it."""
    import tomllib

    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    (contract,) = [c for c in contracts if c["name"].startswith("Trainables talk to the core")]
    package = ROOT / "trainables"
    modules = {
        f"trainables.{p.stem}"
        for p in package.iterdir()
        if (p.suffix == ".py" or (p / "__init__.py").is_file()) and p.stem not in ("__init__", "api")
    }
    assert set(contract["source_modules"]) == modules
