"""``orchestrator train``: the chosen trial's architecture trained for the longer schedule, then registered.

A train is a run of fixed configurations: ``train_models`` turns the chosen trial (``--trial ID``, any finished
trial, a member of the Pareto front as well; else the study's best: with several objectives the knee of the
study's feasible front, ``engine.leaderboard``'s rule over its finished trials) into a study version whose
parameters are all fixed to the trial's values (``per_class`` a choice of its classes with ``--per-class``),
FIFO for ``--epochs``, and asks the engine for a run
(``engine.runner.RunRequest``) whose trials are exactly its models (the values and the trial's seed each),
without warm start. Everything else is the engine's one path: experiment folder and ``orchestrator.json``
(``kind: train``), Ray Tune on the cluster with checkpoints, nested runs, ``orchestrator resume``. Its parent run
is ``KIND`` ``train`` and its nested runs ``training``, which a search's warm start never reads.

When every model has trained, ``register_models`` (the train's end hook, which the composition layer,
``orchestrator.api``, puts in the engine's table; also at the end of a resumed train) logs each model from its
training's last checkpoint with ``models.register.log_best_model`` and registers it as ``<study>`` (all classes)
or ``<study>-<class>``, tagged with the trial's space version and hash, the trial and its run, the train's run
and the training run; a model already registered from its training run is not registered again.

The trial's space is the one its search recorded (``orchestrator.json`` in the search's experiment folder,
named by the search's run), or a space file given with ``space``; its content hash must be the trial's.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from orchestrator.console import Echo
from orchestrator.engine.hooks import Ended, HookTable
from orchestrator.engine.leaderboard import Leaderboard, TrialOutcome, outcomes_from_rows
from orchestrator.engine.plan import SearchPlan, recorded_space
from orchestrator.engine.runner import RunRequest, SearchOptions, SearchResult, start_run
from orchestrator.engine.storage import copy_to_local, open_experiment
from orchestrator.errors import OrchestratorError
from orchestrator.redaction import redact_config
from orchestrator.settings import default_tracking_uri
from orchestrator.spaces import (
    Choice,
    Fixed,
    Schedule,
    SearchSettings,
    SearchSpace,
    StudyVersion,
    dump,
    load_version,
    parse_version,
)
from orchestrator.spaces.secrets import with_fixed_values
from orchestrator.tracking import schema
from orchestrator.tracking.access import require_edit
from orchestrator.tracking.mlflow_store import MlflowStore, TrialRow, describe_uri, open_store
from orchestrator.tracking.study import best_trial, study_goals

PER_CLASS_KEY = "per_class"  # the config key of a trainable that trains on one of its classes only
# The searcher of a train's plan: never asked for values, since every trial is a replay of a planned model.
TRAIN_SEARCHER = "random"


class TrainError(OrchestratorError):
    """What to train cannot be decided: unknown study or trial, no finished trial, an unreadable space."""


@dataclass(frozen=True)
class SourceTrial:
    """The trial a train trains: its run, the space version that suggested it, its seed and values."""

    row: TrialRow
    version: StudyVersion
    seed: int
    values: dict[str, Any]  # the searched values, fixed ones restored (``spaces.secrets.with_fixed_values``)


@dataclass(frozen=True)
class TrainedModel:
    """A registered version of a model a train trained."""

    name: str  # ``<study>`` or ``<study>-<class>``
    version: str
    model_uri: str  # ``models:/<name>/<version>``
    training_run_id: str  # the nested run whose last checkpoint it is


@dataclass(frozen=True)
class TrainResult:
    """A train: what the search machinery reports of its run, the trial it trained, the models it registered."""

    run: SearchResult  # counts, experiment folder, the train's parent run, ``interrupted`` (then: resume it)
    source_trial_id: str
    source_run_id: str
    models: list[TrainedModel] = field(default_factory=list)


@dataclass(frozen=True)
class CheckpointedTrial:
    """What ``models.register.log_best_model`` reads of a Ray Tune ``Result``: the config the trainable received and
    its checkpoint (a ``ray.tune.Checkpoint``)."""

    config: dict[str, Any]
    checkpoint: Any


def model_name(study: str, per_class: str | None) -> str:
    """The registered model of a train's model: the study, or ``<study>-<class>`` for one trained on one class."""
    return f"{study}-{per_class}" if per_class else study


# --------------------------------------------------------------------------- what to train


def chosen_trial(store: MlflowStore, study: str, trial_id: str | None = None) -> TrialRow:
    """The trial run ``trial_id`` of ``study`` (a finished one), else the study's best finished trial."""
    if store.experiment_id(study, create=False) is None:
        raise TrainError(f"no study {study!r} in the tracking store {describe_uri(store.uri)}")
    rows = store.trials(study)
    if trial_id:
        row = next((r for r in rows if r.trial_id == trial_id), None)
        if row is None:
            raise TrainError(f"study {study!r} has no trial {trial_id!r} (see `orchestrator report {study}`)")
        if row.status != "FINISHED":
            raise TrainError(f"trial {trial_id} of study {study!r} did not finish ({row.status}); choose another")
        return row
    goals = study_goals(store, study)
    if goals is not None and goals.multi_objective:
        finished = [r for r in rows if r.status == "FINISHED"]
        outcomes = outcomes_from_rows(finished, goals.goals, goals.constraints)
        board = Leaderboard.by_front(goals.goals, goals.constraints, outcomes)
        knee = board.best
        if knee is None:
            raise TrainError(
                f"study {study!r} has no finished trial on a feasible front ({board.goals_text()}) yet; run a search "
                "first, or choose one with --trial"
            )
        return next(r for r in finished if r.run_id == knee.run_id)
    best = best_trial(rows, goals.metric) if goals is not None else None
    if best is None:
        raise TrainError(f"study {study!r} has no finished trial with its metric yet; run a search first")
    return best[0]


def source_trial(store: MlflowStore, row: TrialRow, space: str | Path | None = None) -> SourceTrial:
    """``row`` with its space version (``space``, else what its search recorded; the hash must be the trial's)."""
    version = _space_file(row, Path(space)) if space is not None else _recorded_space(store, row)
    seed = store.client.get_run(row.run_id).data.tags.get(schema.SEED, "")
    if not seed.isdigit():
        raise TrainError(f"trial {row.trial_id} of study {row.study!r} has no recorded seed; choose another")
    return SourceTrial(row, version, int(seed), with_fixed_values(version, row.config))


def _space_file(row: TrialRow, path: Path) -> StudyVersion:
    version = load_version(path)
    if version.content_hash != row.space_hash:
        raise TrainError(
            f"{path} (hash {version.short_hash}) is not the space of trial {row.trial_id} "
            f"(v{row.version}, hash {row.space_hash[:12]})"
        )
    return version


def _recorded_space(store: MlflowStore, row: TrialRow) -> StudyVersion:
    """The space text the trial's search recorded in its ``orchestrator.json``, checked against the trial's hash."""
    path = store.client.get_run(row.parent_run_id).data.tags.get(schema.EXPERIMENT_PATH) if row.parent_run_id else None
    hint = f"give its space file with --space (v{row.version}, hash {row.space_hash[:12]})"
    if not path:
        raise TrainError(f"the search of trial {row.trial_id} recorded no experiment folder; {hint}")
    try:
        meta = open_experiment(path).read_meta()
        version = parse_version(recorded_space(meta), meta["space_file"])
    except (OrchestratorError, KeyError, ValueError, OSError) as e:
        raise TrainError(f"the space of trial {row.trial_id} cannot be read from {path} ({e}); {hint}") from None
    if version.content_hash != row.space_hash:
        raise TrainError(f"the space recorded in {path} is not the one trial {row.trial_id} ran with; {hint}")
    return version


def train_version(source: SourceTrial, epochs: int | None = None, per_class: bool = False) -> StudyVersion:
    """The version a train runs: ``source``'s values pinned (``per_class`` a choice of its classes), FIFO for
    ``epochs`` (default: the source's ``max_epochs``), one trial per model."""
    import trainables
    from trainables.config import resolve

    v = source.version
    params: dict[str, Any] = {name: Fixed(value) for name, value in source.values.items()}
    models = 1
    if per_class:
        if PER_CLASS_KEY not in trainables.get(v.trainable).optional:
            raise TrainError(
                f"--per-class: trainable {v.trainable!r} has no {PER_CLASS_KEY!r} option "
                "(it trains all its classes in one model)"
            )
        classes = resolve(v.trainable, v.trial_config(source.values))["classes"]
        params[PER_CLASS_KEY] = Choice(tuple(classes))
        models = len(classes)
    epochs = epochs or v.schedule.max_epochs
    search = SearchSettings(
        algorithm=TRAIN_SEARCHER,
        trials=models,
        concurrency=v.search.concurrency,
        startup_trials=1,
        max_failures=v.search.max_failures,
    )
    notes = f"train of trial {source.row.trial_id} of {v.label} ({v.short_hash}) for {epochs} epochs" + (
        ", one model per class" if per_class else ""
    )
    return replace(
        v,
        params=SearchSpace(params),
        schedule=Schedule("fifo", epochs),
        search=search,
        notes=notes,
        source=f"train of {v.label}",
    )


def trainings(version: StudyVersion, seed: int) -> tuple[tuple[dict[str, Any], int], ...]:
    """The ``(values, seed)`` of each model of the train ``version``: one per class of its ``per_class`` choice."""
    pinned = {name: p.default_value for name, p in version.params.params.items() if p.is_fixed}
    choice = version.params.params.get(PER_CLASS_KEY)
    if choice is None or choice.is_fixed:
        return ((pinned, seed),)
    return tuple(({**pinned, PER_CLASS_KEY: cls}, seed) for cls in choice.options)


# --------------------------------------------------------------------------- train


def train_models(
    study: str,
    options: SearchOptions,
    hooks: HookTable,
    *,
    trial_id: str | None = None,
    epochs: int | None = None,
    per_class: bool = False,
    space: str | Path | None = None,
    echo: Echo = print,
) -> TrainResult:
    """Train trial ``trial_id`` of ``study`` (default: its best) for ``epochs``, one model or one per class, on the
    Ray cluster of ``options.address`` (default: a local Ray), and register each model (``hooks``' train entry).

    Everything that can be checked is checked before the train's run exists; an interrupted train continues with
    ``orchestrator resume <experiment>`` (``TrainResult.run.interrupted``) and registers its models at its end.
    """
    store = open_store(options.tracking_uri or default_tracking_uri())
    require_edit(store, study, "orchestrator train")  # it registers models: EDIT on the study, checked first
    source = source_trial(store, chosen_trial(store, study, trial_id), space)
    version = train_version(source, epochs, per_class)
    models = trainings(version, source.seed)
    row = source.row
    echo(
        f"training trial {row.trial_id} of {source.version.label} ({source.version.short_hash}): {len(models)} "
        f"model(s), {version.schedule.max_epochs} epochs each; values {_shown(source.values)}"
    )
    request = RunRequest(
        kind=schema.TRAIN_RUN,
        version=version,
        space_text=dump(version),
        run_name=f"train {row.trial_id} {time.strftime('%Y-%m-%d %H:%M')}",
        folder=f"{study}-train-v{version.version}-{time.strftime('%Y%m%d-%H%M%S')}",
        recorded=source.version,
        fixed_trials=models,
        warm_start=False,
        tags={schema.TRIAL_ID: row.trial_id, schema.SOURCE_RUN: row.run_id},
        params={schema.PARAM_EPOCHS: version.schedule.max_epochs},
        note=f"{version.notes}\n\nvalues {_shown(source.values)}",
        command="orchestrator train",
    )
    options = dataclasses.replace(options, trials=None, concurrency=None, seed=source.seed)
    ran = start_run(request, options, hooks, echo)
    return TrainResult(ran, row.trial_id, row.run_id, trained_models(store, study, ran.parent_run_id))


def _shown(values: dict[str, Any]) -> str:
    return json.dumps(redact_config(values), sort_keys=True)


# --------------------------------------------------------------------------- register


def register_models(ended: Ended) -> list[TrainedModel]:
    """The train's end hook: log and register the model of every finished training of the train ``ended.plan``,
    from its last checkpoint; one registered already (a resumed train) is kept. Raises ``TrainError`` for a
    finished training without a checkpoint; MLflow's and torch's errors propagate (the train's run records them)."""
    from orchestrator.models.register import log_best_model

    store, plan, echo = ended.store, ended.plan, ended.echo
    client = store.client
    tags = client.get_run(plan.parent_run_id).data.tags
    version, metric = plan.version, plan.version.metric
    rows = store.trials(version.study, parent_run_id=plan.parent_run_id, kind=schema.TRAINING_RUN)
    done = {m.training_run_id for m in trained_models(store, version.study, plan.parent_run_id)}
    for row in sorted((r for r in rows if r.status == "FINISHED"), key=lambda r: str(r.config.get(PER_CLASS_KEY))):
        name = model_name(version.study, row.config.get(PER_CLASS_KEY))
        if row.run_id in done:  # an earlier driver of this train registered it
            echo(f"model {name} of training run {row.run_id} is registered already")
            continue
        # the model's TRIAL_ID and SOURCE_RUN name the trial it trains; its value is what this training reached
        score = row.score(metric.name)
        trained = TrialOutcome(
            trial_id=tags[schema.TRIAL_ID],
            run_id=tags[schema.SOURCE_RUN],
            value=float("nan") if score is None else score,
            epoch=version.schedule.max_epochs,
            status=row.status,
            config=row.config,
        )
        with tempfile.TemporaryDirectory(prefix="orchestrator-train-") as local:
            checkpointed = _checkpointed(store, plan, row, local)
            model = log_best_model(
                store,
                version,
                row.run_id,
                trained,
                checkpointed,
                registered_name=name,
                tags={
                    schema.VERSION: tags[schema.VERSION],
                    schema.HASH: tags[schema.HASH],
                    schema.TRAIN_RUN_ID: plan.parent_run_id,
                    schema.TRAINED_RUN: row.run_id,
                },
            )
        description = (
            f"trial {trained.trial_id} of {version.study} v{tags[schema.VERSION]} "
            f"({tags[schema.HASH][:12]}), trained {version.schedule.max_epochs} epochs in run "
            f"{row.run_id}; config {_shown(row.config)}"
        )
        client.update_model_version(model.name, model.version, description=description)
        measured = "" if model.value is None else f" ({metric.name} {model.value:.5g} on the validation data)"
        echo(f"registered {model.model_uri}{measured}")
    return trained_models(store, version.study, plan.parent_run_id)


def _checkpointed(store: MlflowStore, plan: SearchPlan, row: TrialRow, local: str) -> CheckpointedTrial:
    """The config the training ``row`` received and its last checkpoint, copied into the folder ``local``."""
    from ray.tune import Checkpoint

    run_tags = store.client.get_run(row.run_id).data.tags
    version = plan.version
    uri = plan.experiment.last_checkpoint(run_tags.get(schema.RESUMED_AS) or row.trial_id, version.schedule.max_epochs)
    if uri is None:
        raise TrainError(f"training run {row.run_id} finished without a checkpoint in {plan.experiment.uri}")
    config = with_fixed_values(version, version.trial_config(row.config))
    config.update(max_epochs=version.schedule.max_epochs, seed=int(run_tags[schema.SEED]))
    return CheckpointedTrial(config, Checkpoint.from_directory(copy_to_local(uri, local)))


def trained_models(store: MlflowStore, study: str, train_run_id: str) -> list[TrainedModel]:
    """The registered model versions that the train ``train_run_id`` of ``study`` trained, by name.

    A version is found by the run it was logged on (a training run of the train), which MLflow records when it
    registers the version: a driver that died before tagging it still finds it."""
    runs = [r.run_id for r in store.trials(study, parent_run_id=train_run_id, kind=schema.TRAINING_RUN)]
    if not runs:
        return []
    listed = ", ".join(f"'{run}'" for run in runs)
    found = store.client.search_model_versions(f"run_id IN ({listed})")
    models = [TrainedModel(v.name, str(v.version), f"models:/{v.name}/{v.version}", v.run_id) for v in found]
    return sorted(models, key=lambda m: (m.name, int(m.version)))
