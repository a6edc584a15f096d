"""Per-study access without a server: MLflow's routes, stores without logins, the one-line errors, the extra.

The behaviour against a real server with logins is tests/team/test_team_server.py.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.errors import describe
from orchestrator.tracking import access, team_server
from orchestrator.tracking.mlflow_store import MlflowStore, TrackingError, http_status, login_user


def test_the_endpoints_are_mlflows_basic_auth_routes() -> None:
    from mlflow.server.auth import routes

    assert access.CURRENT_USER == routes.GET_CURRENT_USER
    assert access.LIST_USERS == routes.LIST_USERS
    assert access.GET_USER_PERMISSION == routes.GET_USER_PERMISSION
    assert access.GRANT_USER_PERMISSION == routes.GRANT_USER_PERMISSION
    assert access.REVOKE_USER_PERMISSION == routes.REVOKE_USER_PERMISSION


def test_the_permissions_granted_are_mlflows_and_ranked_as_it_ranks_them() -> None:
    from mlflow.server.auth.permissions import PERMISSION_PRIORITY, RESOURCE_GRANTABLE_PERMISSIONS

    assert set(access.PERMISSIONS) <= RESOURCE_GRANTABLE_PERMISSIONS
    assert access.RANK == PERMISSION_PRIORITY


def test_a_store_without_logins_has_no_permissions_to_check(tmp_path: Path) -> None:
    store = MlflowStore(f"sqlite:///{tmp_path / 'mlflow.db'}")
    store.experiment_id("local")
    access.require_edit(store, "local", "orchestrator run")  # nothing to refuse: no logins
    assert access.permissions(store, "local") is None
    with pytest.raises(TrackingError, match=r"is not a tracking server: permissions live on one with logins"):
        access.grant(store, "local", "bob", "EDIT")
    with pytest.raises(TrackingError, match=r"permission 'OWNER': give one of READ, EDIT, MANAGE"):
        access.grant(store, "local", "bob", "OWNER")


def test_access_takes_user_and_permission_together(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["access", "demo", "--user", "bob"])
    assert result.exit_code == 2 and "give --user and --permission together" in result.output
    result = CliRunner().invoke(cli, ["access", "demo", "--user", "bob", "--permission", "OWNER"])
    assert result.exit_code == 2 and "'OWNER' is not one of 'READ', 'EDIT', 'MANAGE'" in result.output


def test_access_on_a_local_store_says_there_are_no_permissions(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowStore(uri)  # the store exists (a search made it): access only reads it
    listed = CliRunner().invoke(cli, ["access", "demo", "--tracking-uri", uri])
    assert listed.exit_code == 0 and "no logins on this store, so no permissions" in listed.output
    args = ["access", "demo", "--user", "bob", "--permission", "EDIT", "--tracking-uri", uri]
    granted = CliRunner().invoke(cli, args)
    assert granted.exit_code == 1
    assert describe(granted.exception) == f"error: {uri} is not a tracking server: permissions live on one with logins"


def test_who_logs_in_and_the_status_of_a_failed_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    assert login_user("http://alice:pw@host:5000") == "alice"
    assert login_user("http://host:5000") is None
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "bob")
    assert login_user("http://host:5000") == "bob"
    refused = Exception("API request to endpoint /x failed with error code 401 != 200. Response body: 'no'")
    assert http_status(refused) == 401
    assert http_status(ValueError("something else")) is None


def test_a_missing_server_package_is_one_line_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "psycopg" else real(name, *a))
    with pytest.raises(team_server.TeamServerError) as raised:
        team_server.TeamStack(tmp_path)
    assert str(raised.value) == (
        "the team server needs the Python package 'psycopg[binary]' (module psycopg), which is not installed: "
        "pip install 'orchestrator[server]'"
    )
    assert team_server.main(["--root", str(tmp_path / "state")]) == 1
    assert capsys.readouterr().err == f"error: {raised.value}\n"
    assert not (tmp_path / "state" / "postgres").exists(), "nothing was started"


def test_access_to_a_given_store_imports_neither_ray_nor_torch(tmp_path: Path) -> None:
    MlflowStore(f"sqlite:///{tmp_path / 'm.db'}")
    probe = (
        "import sys; from orchestrator.cli import main\n"
        f"try:\n    main(['access', 'demo', '--tracking-uri', 'sqlite:///{tmp_path / 'm.db'}'])\n"
        "except SystemExit as e:\n    code = e.code\n"
        "print(code, [m for m in ('ray', 'torch') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "0 []", out.stdout + out.stderr
