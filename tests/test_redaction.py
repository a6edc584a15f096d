"""The one redaction rule (orchestrator.redaction): URIs, free text, secret-looking keys, configs."""

from __future__ import annotations

import pytest

from orchestrator.redaction import REDACTED, is_secret_key, redact_config, redact_text, redact_uri

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
    from orchestrator.tracking.mlflow_store import short_error

    plain = short_error(RuntimeError("could not open postgresql://admin:s3cr3t-pw@db:5432/mlflow: refused"))
    assert "s3cr3t-pw" not in plain and "postgresql://db:5432/mlflow" in plain
    request = short_error(
        RuntimeError(
            "API request to http://admin:s3cr3t-pw@127.0.0.1:5000/api/2.0/mlflow/runs/create failed with exception "
            "HTTPConnectionPool(host='127.0.0.1', port=5000): Max retries exceeded "
            "(Caused by NewConnectionError('[Errno 111] Connection refused'))"
        )
    )
    assert "s3cr3t-pw" not in request and "admin" not in request
