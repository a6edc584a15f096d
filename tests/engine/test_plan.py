"""The plan of a search survives ``orchestrator.json``; fit errors are told apart by type, not by text."""

from __future__ import annotations

import traceback
from pathlib import Path

from orchestrator.engine.plan import SearchPlan
from orchestrator.engine.results import MetricNotReported, check_metric_reported
from orchestrator.engine.runner import tune_error_message
from orchestrator.engine.storage import open_storage
from orchestrator.spaces import parse_version
from tests.spacefiles import MINIMAL


def test_plan_round_trips_through_meta(tmp_path: Path) -> None:
    source = tmp_path / "demo" / "v1.yaml"
    experiment = open_storage((tmp_path / "ray").as_uri()).experiment("demo-v1-20240101-000000")
    plan = SearchPlan(
        parse_version(MINIMAL, source),
        MINIMAL,
        "https://alice:s3cret@mlflow.example/",
        experiment,
        "7",
        "parent-1",
        planned=12,
        concurrency=3,
        seed=5,
        reuse_actors=False,
    )
    experiment.write_meta(plan.meta())
    meta = experiment.read_meta()
    assert "s3cret" not in str(meta) and meta["tracking_uri"] == "https://mlflow.example/"
    assert meta["finished"] is False and plan.meta(finished=True)["finished"] is True
    again = SearchPlan.from_meta(experiment, meta, plan.tracking_uri)
    assert again == plan
    assert again.spill.path == f"{experiment.path}/tracking-spill.jsonl"


def raised_like_ray_tune(error: Exception) -> Exception:
    """What ``Tuner.fit`` raises when a searcher callback fails: TuneController re-raises from its handler."""
    from ray.tune.error import TuneError

    try:
        try:
            raise error
        except Exception:
            raise TuneError(traceback.format_exc())  # noqa: B904  (Ray's own pattern: the original is the context)
    except TuneError as tune_error:
        return tune_error


def test_metric_not_reported_is_found_on_the_chain() -> None:
    try:
        check_metric_reported({"accuracy": 0.5, "training_iteration": 1}, "loss", "analytic")
    except MetricNotReported as e:
        error = raised_like_ray_tune(e)
    assert tune_error_message(error) == (
        "the trainable 'analytic' did not report the metric 'loss' named in the space file; it reported: accuracy"
    )


def test_other_errors_are_named_by_the_first_error_of_the_chain() -> None:
    error = raised_like_ray_tune(ValueError("MetricNotReported: text that only looks like it\nmore"))
    assert tune_error_message(error) == "the search failed: ValueError: MetricNotReported: text that only looks like it"
    assert tune_error_message(RuntimeError("")) == "the search failed: RuntimeError"
