"""The one redaction rule (orchestrator.redaction): URIs, free text, secret-looking keys, configs."""

from __future__ import annotations

import pytest

from orchestrator.redaction import REDACTED, is_secret_key, redact_config, redact_text, redact_uri
from tests.spacefiles import MINIMAL_HEAD

PASSWORD = "pl4nted-Pa55"


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (f"http://alice:{PASSWORD}@mlflow:5000/x", "http://mlflow:5000/x"),
        (f"https://alice:{PASSWORD}@mlflow.example/", "https://mlflow.example/"),
        (f"postgresql://mlflow:{PASSWORD}@db:5432/mlflow", "postgresql://db:5432/mlflow"),
        ("http://token-only@host", "http://host"),
        (f"my_store://u:{PASSWORD}@host/p", "my_store://host/p"),  # a scheme urllib does not parse
        (f"http://u:{PASSWORD}@with@at@host/p", "http://host/p"),  # an unencoded '@' in the password
        (f"http://host/?token={PASSWORD}&a=1#top", f"http://host/?token={REDACTED}&a=1#top"),
        (f"s3://bucket/p?x=1&password={PASSWORD}", f"s3://bucket/p?x=1&password={REDACTED}"),
        (f"http://h/?api%5Fkey={PASSWORD}", f"http://h/?api%5Fkey={REDACTED}"),
        ("http://host/?tokenizer=bpe", "http://host/?tokenizer=bpe"),
        ("sqlite:///tmp/a.db", "sqlite:///tmp/a.db"),
        ("/plain/folder", "/plain/folder"),
        ("file:///tmp/x@y", "file:///tmp/x@y"),  # '@' in the path is not a login
    ],
)
def test_redact_uri(uri: str, expected: str) -> None:
    assert redact_uri(uri) == expected
    assert redact_uri(expected) == expected  # idempotent


def test_redact_text_cleans_every_uri_in_a_message() -> None:
    text = (
        f"API request to http://alice:{PASSWORD}@mlflow:5000/api failed; retried "
        f"'https://bob:{PASSWORD}@backup/x?token={PASSWORD}' and (s3://k:{PASSWORD}@bucket/p)."
    )
    clean = redact_text(text)
    assert PASSWORD not in clean
    assert "http://mlflow:5000/api" in clean and "'https://backup/x?token=***'" in clean
    assert "(s3://bucket/p)." in clean
    assert redact_text("no uri here: user:pw is not one") == "no uri here: user:pw is not one"


def test_redact_text_masks_a_bearer_token() -> None:
    text = f"request failed with headers {{'authorization': 'Bearer {PASSWORD}'}}; bearer {PASSWORD}."
    masked = f"request failed with headers {{'authorization': 'Bearer {REDACTED}'}}; bearer {REDACTED}."
    assert redact_text(text) == masked


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "db_password",
        "optimizer.api_key",
        "apiKey",
        "ApiKey",
        "MLFLOW_TRACKING_TOKEN",
        "aws.access_key_id",
        "private_key",
        "client-secret",
        "credentials",
        "auth",
        "basic_auth.user",
        "passwd",
        "secrets",
        "model/sub.token",
    ],
)
def test_secret_keys(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize(
    "key",
    ["tokenizer", "passes", "author", "authority", "keyword", "access", "secretary", "lr", "optimizer.momentum", ""],
)
def test_keys_that_are_not_secret(key: str) -> None:
    assert not is_secret_key(key)


def test_redact_config_walks_nested_mappings_and_lists() -> None:
    config = {
        "lr": 0.1,
        "optimizer": {"name": "adam", "api_key": PASSWORD, "betas": [0.9, 0.99]},
        "db_password": PASSWORD,
        "auth": {"user": "alice", "pass": PASSWORD},
        "stores": [{"uri": f"http://u:{PASSWORD}@h/"}, {"token": PASSWORD}],
        "tokenizer": "bpe",
    }
    clean = redact_config(config)
    assert PASSWORD not in repr(clean)
    assert clean["optimizer"] == {"name": "adam", "api_key": REDACTED, "betas": [0.9, 0.99]}
    assert clean["db_password"] == clean["auth"] == REDACTED
    assert clean["stores"] == [{"uri": "http://h/"}, {"token": REDACTED}]
    assert (clean["lr"], clean["tokenizer"]) == (0.1, "bpe")
    assert config["db_password"] == PASSWORD  # the input is not changed
    assert redact_config({"optimizer.api_key": PASSWORD}) == {"optimizer.api_key": REDACTED}


def test_errors_we_print_from_mlflow_carry_no_credentials() -> None:
    from orchestrator.errors import first_line

    plain = first_line(RuntimeError("could not open postgresql://admin:s3cr3t-pw@db:5432/mlflow: refused"))
    assert "s3cr3t-pw" not in plain and "postgresql://db:5432/mlflow" in plain
    request = first_line(
        RuntimeError(
            "API request to http://admin:s3cr3t-pw@127.0.0.1:5000/api/2.0/mlflow/runs/create failed with exception "
            "HTTPConnectionPool(host='127.0.0.1', port=5000): Max retries exceeded "
            "(Caused by NewConnectionError('[Errno 111] Connection refused'))"
        )
    )
    assert "s3cr3t-pw" not in request and "admin" not in request


# --------------------------------------------------------------------------- credentials of the tracking URI

URI = f"http://alice:{PASSWORD}@mlflow:5000"


def test_a_login_is_kept_in_this_process_only() -> None:
    from orchestrator.tracking.mlflow_store import keep_login, with_login

    assert keep_login(URI) == "http://mlflow:5000"
    assert with_login("http://mlflow:5000") == URI
    assert with_login("http://other:5000") == "http://other:5000"  # nothing kept: MLflow's variables apply
    assert keep_login("sqlite:///tmp/x.db") == "sqlite:///tmp/x.db"


def test_the_pickled_tracking_callback_holds_no_credentials(tmp_path) -> None:
    import pickle

    from orchestrator.engine.tracking_callback import MlflowTrialCallback
    from orchestrator.tracking.async_logger import SpillFile
    from orchestrator.tracking.mlflow_store import with_login

    callback = MlflowTrialCallback(SECRET_SPACE, URI, "1", "parent", SpillFile.local(tmp_path / "spill.jsonl"))
    state = pickle.dumps(callback)
    assert PASSWORD.encode() not in state and b"alice" not in state
    restored = pickle.loads(state)
    assert restored.tracking_uri == "http://mlflow:5000" and with_login(restored.tracking_uri) == URI


# --------------------------------------------------------------------------- secret values in a space

SECRET_SPACE_TEXT = (
    MINIMAL_HEAD.replace("study: demo", "study: secrets")
    + f"""\
search: {{algorithm: random, trials: 4}}
params:
  x: {{uniform: [-1.0, 1.0]}}
  optimizer:
    choice:
      - {{name: adam}}
      - {{name: sgd, momentum: {{uniform: [0.8, 0.99]}}, api_key: {PASSWORD}}}
fixed: {{function: quadratic, choice: {{name: vault, password: {PASSWORD}}}}}
"""
)


def _space(text: str = SECRET_SPACE_TEXT):
    from orchestrator.spaces import parse_version

    return parse_version(text, "secrets/v1.yaml")


SECRET_SPACE = _space()
SGD = {"name": "sgd", "momentum": 0.9, "api_key": REDACTED}


def test_a_redacted_fixed_entry_still_selects_its_option_and_fits() -> None:
    choice = SECRET_SPACE.params.params["optimizer"]
    assert choice.select(SGD) == 1 and choice.contains(SGD)
    assert choice.select({**SGD, "api_key": "another-key"}) is None  # a real, different value picks nothing
    assert PASSWORD not in choice.describe()
    assert SECRET_SPACE.params.contains({"x": 0.1, "optimizer": SGD}) is None


def test_a_trial_recorded_redacted_is_carried_and_one_with_another_secret_is_dropped() -> None:
    from orchestrator.spaces.carry import FIXED_DIFFERS, NOT_A_CHOICE, carry, fit
    from orchestrator.spaces.trials import RecordedTrial

    recorded = [
        RecordedTrial({"x": 0.1, "optimizer": SGD}, 1.0),  # as the tracking callback records it
        RecordedTrial({"x": 0.2, "optimizer": {**SGD, "api_key": PASSWORD}}, 2.0),  # recorded before redaction
        RecordedTrial({"x": 0.3, "optimizer": {**SGD, "api_key": "another-key"}}, 3.0),
    ]
    report = carry(recorded, SECRET_SPACE)
    assert [c for c, _ in report.carried] == [{"x": 0.1, "optimizer": SGD}, {"x": 0.2, "optimizer": SGD}]
    assert report.dropped == {f"optimizer {NOT_A_CHOICE}": 1}
    assert PASSWORD not in repr(report.carried)
    fixed_only = _space(SECRET_SPACE_TEXT.replace("  x: {uniform: [-1.0, 1.0]}\n", f"  x: 0.5\n  token: {PASSWORD}\n"))
    with pytest.raises(ValueError, match=FIXED_DIFFERS) as error:
        fit(fixed_only.params, {"x": 0.5, "token": "another-key", "optimizer": {"name": "adam"}})
    assert PASSWORD not in str(error.value) and "another-key" not in str(error.value) and "secret" in str(error.value)


def test_the_searcher_issues_redacted_configs_and_the_trainable_gets_the_values_back(tmp_path) -> None:
    import json

    from orchestrator.engine.searchers import searcher_class
    from orchestrator.spaces.secrets import mask_secrets, with_fixed_values

    masked = mask_secrets(SECRET_SPACE)  # what build_searcher gives the searcher
    assert PASSWORD not in repr(masked) and masked.params.params.keys() == SECRET_SPACE.params.params.keys()
    searcher = searcher_class("random")(masked, [], seed=1)
    configs = [searcher.suggest(f"t{i}") for i in range(8)]
    assert {c["optimizer"]["name"] for c in configs} == {"adam", "sgd"}
    assert PASSWORD not in json.dumps(configs)
    for i in range(len(configs)):
        searcher.on_trial_complete(f"t{i}", {"loss": 1.0 + i, "training_iteration": 1})
    searcher.save(str(tmp_path / "searcher.json"))
    assert PASSWORD not in (tmp_path / "searcher.json").read_text()
    searcher.suggest("t-next")  # it learns from redacted values
    for config in configs:
        given = with_fixed_values(SECRET_SPACE, config)
        assert given["choice"] == {"name": "vault", "password": PASSWORD}
        if given["optimizer"]["name"] == "sgd":
            assert given["optimizer"]["api_key"] == PASSWORD
            assert given["optimizer"]["momentum"] == config["optimizer"]["momentum"]
        assert (given["x"], given["seed"]) == (config["x"], config["seed"])


def test_a_searched_secret_looking_parameter_is_refused() -> None:
    from orchestrator.spaces.secrets import secret_problems

    assert secret_problems(SECRET_SPACE) == []
    searched = _space(SECRET_SPACE_TEXT.replace("  x: {uniform", "  api_token: {choice: [a, b]}\n  x: {uniform"))
    [problem] = secret_problems(searched)
    assert problem.path == "params.api_token" and "api_token looks like a secret" in str(problem)


def test_orchestrator_json_keeps_a_space_with_secrets_masked_and_resume_reads_its_file(tmp_path) -> None:
    from orchestrator.engine.plan import SPACE_REDACTED, recorded_space_text, space_file_text
    from orchestrator.errors import OrchestratorError

    plain = SECRET_SPACE_TEXT.replace(PASSWORD, "x")
    assert recorded_space_text(plain.replace("api_key", "label").replace("password", "label")) == {
        "space_text": plain.replace("api_key", "label").replace("password", "label")
    }
    recorded = recorded_space_text(SECRET_SPACE_TEXT)
    assert recorded[SPACE_REDACTED] is True and PASSWORD not in recorded["space_text"]
    space_file = tmp_path / "v1.yaml"
    space_file.write_text(SECRET_SPACE_TEXT)
    meta = {**recorded, "space_file": str(space_file), "space_hash": SECRET_SPACE.content_hash}
    assert space_file_text(meta) == SECRET_SPACE_TEXT
    space_file.write_text(SECRET_SPACE_TEXT.replace("0.99", "0.98"))
    with pytest.raises(OrchestratorError, match="resume needs the space file"):
        space_file_text(meta)


def test_trial_folders_are_named_without_config_values() -> None:
    from types import SimpleNamespace

    from orchestrator.engine.plan import trial_name

    assert trial_name(SimpleNamespace(trainable_name="analytic", trial_id="ab12_00003", config={"k": 1})) == (
        "analytic_ab12_00003"
    )


# --------------------------------------------------------------------------- errors we print or record


def test_the_failure_reason_of_a_trial_and_every_printed_error_lose_credentials() -> None:
    from types import SimpleNamespace

    from orchestrator.engine.results import failure_reason
    from orchestrator.errors import OrchestratorError, describe

    error = RuntimeError(f"Traceback ...\n  File x\nMlflowException: API request to {URI}/api failed")
    reason = failure_reason(SimpleNamespace(get_error=lambda: error))
    assert PASSWORD not in reason and reason == "MlflowException: API request to http://mlflow:5000/api failed"
    for e in (OrchestratorError(f"cannot use {URI}"), KeyError(f"{URI}/x")):
        assert PASSWORD not in describe(e) and "http://mlflow:5000" in describe(e)
