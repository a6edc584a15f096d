"""A finished search's review artifacts, logged on its parent run while it is still RUNNING.

What a reviewer opens on the search's run (names in ``tracking.schema``, all under ``review/``): the
leaderboard as Markdown and Parquet (a copy of the Markdown on the best trial's run), the best values
as a space-file fragment, the parameter importance (``analysis.importance``, a plot and its numbers) and
the best value so far against trials; and the best trial's model in the Model Registry
(``models.register``). A search of several objectives ranks its leaderboard by front (``engine.leaderboard``)
and adds the front's pictures and the importance per objective (``review.pareto``); its best, whose values
are pinned and whose model is registered, is the knee of the feasible front. Importance and model are
optional parts: when one cannot be made, a tag on the run
says why (``IMPORTANCE_SKIPPED``, ``MODEL_SKIPPED``) and the rest is still logged. :func:`review_search` is a
search's end hook (``engine.hooks.RunHooks.finish``, put in the engine's table by ``orchestrator.api``): it
calls :func:`log_search_review` and turns any other failure into ``REVIEW_ERROR``: a review never fails a search.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import yaml

from orchestrator.analysis.importance import Importance, ImportanceSkipped, parameter_importance
from orchestrator.console import Echo
from orchestrator.engine.hooks import Ended
from orchestrator.engine.leaderboard import Leaderboard, TrialOutcome
from orchestrator.errors import failure_line
from orchestrator.models.register import ModelSkipped, RegisteredModel, log_best_model
from orchestrator.redaction import redact_config
from orchestrator.settings import review_wait_s
from orchestrator.spaces import StudyVersion
from orchestrator.spaces.kinds import Fixed
from orchestrator.spaces.space import SearchSpace
from orchestrator.spaces.writer import to_document
from orchestrator.tracking import schema
from orchestrator.tracking.links import run_url
from orchestrator.tracking.mlflow_store import MlflowStore, describe_uri, with_login

from .trial import ModelJob, TrialReviews

FRAGMENT_SECTIONS = ("fixed", "params")  # the sections of a space file the best-config fragment pins
FIGURE_SIZE = (7.0, 4.2)  # inches
FIGURE_DPI = 110


def review_search(ended: Ended) -> None:
    """A search's end hook: its review artifacts (:func:`log_search_review`); a failure is a tag and one line, never
    a failed search."""
    store, parent = ended.store, ended.plan.parent_run_id
    try:
        log_search_review(store, ended.plan.version, parent, ended.board, ended.grid, ended.echo)
    except Exception as e:
        reason = failure_line(e)
        ended.echo(f"review: no review artifacts on run {parent} ({reason})")
        with suppress(Exception):  # the store is failing: ending the run reports it
            store.log_batch(parent, tags={schema.REVIEW_ERROR: reason})


def log_search_review(
    store: MlflowStore, version: StudyVersion, parent_run_id: str, board: Leaderboard, grid: Iterable[Any], echo: Echo
) -> None:
    """Render and log every review artifact of the search ``parent_run_id``; ``grid`` is Ray Tune's ``ResultGrid``.

    ``board`` is the search's leaderboard; the trials' run ids and end times are read from ``store`` here.
    """
    board = board.with_runs(store.trials(version.study, parent_run_id=parent_run_id)).linked(_run_links(store, version))
    best, tags, logged = board.best, {}, []
    reviews = _ask_model(store, version, parent_run_id, best, grid)  # logged by the review process meanwhile
    with tempfile.TemporaryDirectory(prefix="orchestrator-review-") as tmp:
        folder = Path(tmp)
        files = {
            schema.LEADERBOARD_ARTIFACT: _write_text(
                folder,
                schema.LEADERBOARD_ARTIFACT,
                board.markdown(f"{version.label} ({version.short_hash}): search run {parent_run_id}"),
            ),
        }
        path = folder / schema.review_file_name(schema.LEADERBOARD_TABLE_ARTIFACT)
        pq.write_table(board.table(), path)
        files[schema.LEADERBOARD_TABLE_ARTIFACT] = path
        if best is not None:
            files[schema.BEST_CONFIG_ARTIFACT] = _write_text(
                folder, schema.BEST_CONFIG_ARTIFACT, best_config_fragment(version, best)
            )
        if best is not None and not board.multi_objective:
            files[schema.BEST_SO_FAR_ARTIFACT] = plot_best_so_far(board, folder, version.label)
        if board.multi_objective:
            from .pareto import front_artifacts

            more, skipped = front_artifacts(version, board, folder, _figure, _save, plot_importance)
            files.update(more)
            tags.update(skipped)
        else:
            _importance(version, board, folder, files, tags)
        for artifact, local in files.items():
            store.log_artifact(parent_run_id, local, schema.REVIEW_ARTIFACT_DIR)
            logged.append(artifact)
        if best is not None and best.run_id:
            store.log_artifact(best.run_id, files[schema.LEADERBOARD_ARTIFACT], schema.REVIEW_ARTIFACT_DIR)
    model = _logged_model(store, version, parent_run_id, board, grid, tags, reviews)
    if tags:
        store.log_batch(parent_run_id, tags=tags)
    echo(f"review: {', '.join(schema.review_file_name(a) for a in logged)} on run {parent_run_id}")
    for reason in tags.values():
        echo(f"review: {reason}")
    if model is not None:
        measured = "" if model.value is None else f" ({model.metric} {model.value:.5g} on the validation data)"
        which = "the knee of the front" if board.multi_objective else "best model"
        echo(f"review: {which} {model.model_uri}{measured}, from trial {model.trial_id}")


def _run_links(store: MlflowStore, version: StudyVersion) -> Any:
    """Run id -> its page in the MLflow UI, for a tracking server (its address, without credentials); None for a
    local store, whose UI has no address until one serves it."""
    base = describe_uri(store.uri)
    if not base.startswith(("http://", "https://")):
        return None
    experiment_id = store.experiment_id(version.study, create=False)
    if experiment_id is None:
        return None
    return lambda run_id: run_url(base, experiment_id, run_id)


def _importance(
    version: StudyVersion, board: Leaderboard, folder: Path, files: dict[str, Path], tags: dict[str, str]
) -> None:
    """The importance of one metric's search into ``files`` (or why there is none into ``tags``)."""
    try:
        importance = parameter_importance(version, board.rows)
    except ImportanceSkipped as e:
        tags[schema.IMPORTANCE_SKIPPED] = str(e)
    except Exception as e:  # a plot is not worth a search: say why there is none
        tags[schema.IMPORTANCE_SKIPPED] = f"failed: {failure_line(e)}"
    else:
        files[schema.IMPORTANCE_VALUES_ARTIFACT] = _write_text(
            folder, schema.IMPORTANCE_VALUES_ARTIFACT, json.dumps(importance.as_dict(), indent=1)
        )
        files[schema.IMPORTANCE_ARTIFACT] = plot_importance(importance, folder, version.label)


def _ask_model(
    store: MlflowStore, version: StudyVersion, parent_run_id: str, best: TrialOutcome | None, grid: Iterable[Any]
) -> TrialReviews | None:
    """Have the search's review process (``trial_callback.trial_reviews_of``), whose torch and mlflow are warm, log
    the best model while the driver makes the other artifacts; the reviews that took the job, or None (the driver
    logs it: no review process, or nothing to log)."""
    from .trial_callback import trial_reviews_of  # Ray Tune's callback: imported only where a search ran

    reviews = trial_reviews_of(parent_run_id)
    result = None if best is None else _result_of(grid, best)
    if reviews is None or best is None or result is None or getattr(result, "checkpoint", None) is None:
        return None
    job = ModelJob(with_login(store.uri), version, parent_run_id, best, dict(result.config), result.checkpoint)
    return reviews if reviews.ask_model(job) else None


def _logged_model(
    store: MlflowStore,
    version: StudyVersion,
    parent_run_id: str,
    board: Leaderboard,
    grid: Iterable[Any],
    tags: dict[str, str],
    reviews: TrialReviews | None = None,
) -> RegisteredModel | None:
    """Log the best model (the knee, by front), or take it from the review process that ``reviews`` asked; a reason
    in ``tags[MODEL_SKIPPED]`` instead when there is none."""
    if reviews is not None:
        outcome = reviews.model(review_wait_s())
        if outcome.model is not None:
            return outcome.model
        tags[schema.MODEL_SKIPPED] = outcome.skipped or f"failed: {outcome.error}"
        return None
    best = board.best
    result = None if best is None else _result_of(grid, best)
    try:
        if best is None or result is None:
            none = (
                f"no trial meets the constraints ({board.goals_text()})"
                if board.rows and board.fronts
                else "no trial reported the metric"
            )
            raise ModelSkipped(none if best is None else f"no Ray Tune result for the best trial {best.trial_id}")
        return log_best_model(store, version, parent_run_id, best, result)
    except ModelSkipped as e:
        tags[schema.MODEL_SKIPPED] = str(e)
    except Exception as e:  # the artifacts above are logged already; the model is not worth a search
        tags[schema.MODEL_SKIPPED] = f"failed: {failure_line(e)}"
    return None


def _trial_id(result: Any) -> str:
    return str((result.metrics or {}).get("trial_id", ""))


def _result_of(grid: Iterable[Any], best: TrialOutcome) -> Any:
    """Ray Tune's result of the trial ``best`` in ``grid``, or None."""
    return next((r for r in grid if _trial_id(r) == best.trial_id), None)


def best_config_fragment(version: StudyVersion, best: TrialOutcome) -> str:
    """The best values as the ``fixed:`` and ``params:`` sections of a space file, each parameter pinned.

    Built through the space model (every searched parameter becomes ``Fixed``) and the writer's
    document form, so it reads as the files do; values of secret-looking keys are redacted.
    """
    pinned = SearchSpace({name: Fixed(value) for name, value in redact_config(best.config).items()})
    document = to_document(replace(version, fixed=redact_config(version.fixed), params=pinned))
    scored = (
        ", ".join(f"{m.name} {v!r}" for m, v in zip(version.goals, best.point, strict=True))
        if version.multi_objective
        else f"{version.metric.name} {best.value!r}"
    )
    which = "the knee of the front, trial" if version.multi_objective else "best trial"
    header = (
        f"# {which} {best.trial_id} of {version.label} (space hash {version.content_hash}): {scored}\n"
        "# every searched parameter pinned to its value: paste over the fixed: and params: sections of a space file\n"
    )
    fragment = {key: document[key] for key in FRAGMENT_SECTIONS if key in document}
    return header + yaml.safe_dump(fragment, sort_keys=False, allow_unicode=True)


def plot_best_so_far(board: Leaderboard, folder: Path, title: str) -> Path:
    """``best_so_far.png``: each trial's value in completion order (dots) and the best value so far (a step line)."""
    ordered = board.completion_order()
    values = [row.value for row in ordered]
    so_far = [values[0]]
    for value in values[1:]:
        so_far.append(value if board.metric.better(value, so_far[-1]) else so_far[-1])
    trials = list(range(1, len(values) + 1))
    figure, axes = _figure()
    axes.scatter(trials, values, color="tab:gray", s=18, label="trial", zorder=2)
    axes.step(trials, so_far, where="post", color="tab:blue", linewidth=2, label="best so far", zorder=3)
    axes.set_xlabel("trial (completion order)")
    axes.set_ylabel(f"{board.metric.name} ({board.metric.mode})")
    axes.set_title(f"{title}: best {board.metric.name} so far")
    axes.grid(alpha=0.3)
    axes.legend(loc="best")
    return _save(figure, folder / schema.review_file_name(schema.BEST_SO_FAR_ARTIFACT))


def plot_importance(importance: Importance, folder: Path, title: str) -> Path:
    """``importance.png``: one horizontal bar per parameter, the most important on top."""
    ranked = sorted(importance.values.items(), key=lambda item: item[1])
    figure, axes = _figure()
    axes.barh([name for name, _ in ranked], [value for _, value in ranked], color="tab:blue")
    axes.set_xlabel(f"importance for {importance.metric} ({importance.evaluator}, {importance.trials} trials)")
    axes.set_xlim(0, 1)
    axes.set_title(f"{title}: parameter importance")
    axes.grid(axis="x", alpha=0.3)
    return _save(figure, folder / schema.review_file_name(schema.IMPORTANCE_ARTIFACT))


def _figure() -> tuple[Any, Any]:
    """A figure of its own (no pyplot: no global state, no GUI backend)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=FIGURE_SIZE, dpi=FIGURE_DPI, layout="constrained")
    return figure, figure.add_subplot()


def _save(figure: Any, path: Path) -> Path:
    figure.savefig(path, format="png")
    return path


def _write_text(folder: Path, artifact: str, text: str) -> Path:
    path = folder / schema.review_file_name(artifact)
    path.write_text(text, encoding="utf-8")
    return path
