"""The MLflow names: defined once in ``orchestrator.tracking.schema``, and the doc's table is the schema's."""

from __future__ import annotations

from collections import Counter

from orchestrator.tracking import schema
from tests.spacefiles import ROOT

ARCHITECTURE = ROOT / "docs" / "architecture.md"


def layout_section() -> str:
    text = ARCHITECTURE.read_text()
    start = text.index("## MLflow layout\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else len(text)]


def test_doc_table_is_the_schema() -> None:
    assert schema.markdown() in layout_section(), (
        "docs/architecture.md's MLflow layout table differs from the schema; "
        "paste the output of `python -m orchestrator.tracking.schema --markdown`"
    )


def test_every_name_of_ours_in_the_doc_is_in_the_schema() -> None:
    spelled = {word.strip("`") for word in layout_section().split() if word.startswith(f"`{schema.PREFIX}")}
    assert spelled and spelled <= schema.names()


def test_every_constant_is_described_once_per_object_and_kind() -> None:
    not_names = {"PREFIX", "SEARCH_RUN", "TRIAL_RUN", "TRAIN_RUN", "TRAINING_RUN"}  # a prefix and the values of KIND
    constants = {v for k, v in vars(schema).items() if k.isupper() and isinstance(v, str) and k not in not_names}
    assert constants - schema.names() == set()
    counts = Counter((e.name, e.on, e.kind) for e in schema.ENTRIES)
    assert [key for key, n in counts.items() if n > 1] == []
    assert all(e.meaning for e in schema.ENTRIES)


def test_best_metric_name() -> None:
    assert schema.best_metric("val_jaccard") == "best_val_jaccard"


def test_markdown_command_prints_the_table(capsys) -> None:
    schema.main(["--markdown"])
    assert capsys.readouterr().out == schema.markdown()
