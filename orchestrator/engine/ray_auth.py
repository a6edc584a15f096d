"""Ray's token authentication as every path of ours meets it: what to set, checked before anything runs.

Ray (2.52 and later) authenticates with one static token when ``RAY_AUTH_MODE=token``: every node,
driver and Jobs client of a cluster must share that mode and the token, read from Ray's own variables,
highest precedence first: ``RAY_AUTH_TOKEN`` (the token itself), ``RAY_AUTH_TOKEN_PATH`` (a file holding
it), else ``~/.ray/auth_token``. We never take a token any other way, never pass one on, and name only
where it came from (the variable or the file), never its value.

Ray 2.60's defaults, which the code here relies on: a local Ray started by ``ray.init()`` with
``RAY_AUTH_MODE`` unset turns token authentication on (and writes a new token to ``~/.ray/auth_token``
when none is found); ``ray start`` turns it on only when a token is found; a driver joining an
explicit address never turns it on by itself. So a search's embedded local Ray is token-authenticated
unless ``RAY_AUTH_MODE=disabled`` says otherwise, and Ray's warning that it turned this on is kept
quiet (:func:`quiet_default_auth_warning`): it is the intended setting, not news.

Joining a cluster with a missing or wrong token makes ``ray.init`` retry for 20 s and end with
"Failed to connect"; :func:`check_gcs_token` asks the cluster's GCS once, in milliseconds, and turns
a refusal into one line naming what to set (:func:`missing_token`, :func:`refused_token`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from orchestrator.errors import OrchestratorError

AUTH_MODE_VAR = "RAY_AUTH_MODE"
TOKEN_VAR = "RAY_AUTH_TOKEN"
TOKEN_PATH_VAR = "RAY_AUTH_TOKEN_PATH"
DEFAULT_TOKEN_FILE = "~/.ray/auth_token"
WHAT_TO_SET = (
    f"set {AUTH_MODE_VAR}=token and the cluster's token in {TOKEN_PATH_VAR} (a file holding it) or {TOKEN_VAR}"
)
# Where Ray logs that it turned token authentication on for a local cluster.
_RAY_AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"


def auth_mode(env: Mapping[str, str] | None = None) -> str:
    """``RAY_AUTH_MODE`` as Ray reads it (lower case); empty when unset."""
    return (os.environ if env is None else env).get(AUTH_MODE_VAR, "").strip().lower()


def token_source(env: Mapping[str, str] | None = None) -> str | None:
    """Where Ray takes the token from, in Ray's order, without the token: the variable or the file; None if none."""
    env = os.environ if env is None else env
    if env.get(TOKEN_VAR, "").strip():
        return TOKEN_VAR
    if env.get(TOKEN_PATH_VAR, "").strip():
        return f"{TOKEN_PATH_VAR} ({env[TOKEN_PATH_VAR]})"
    if Path(DEFAULT_TOKEN_FILE).expanduser().is_file():
        return DEFAULT_TOKEN_FILE
    return None


def missing_token(where: str, env: Mapping[str, str] | None = None) -> OrchestratorError:
    """``where`` (a Ray cluster) wants a token and this process sends none: one line naming what to set."""
    mode = auth_mode(env)
    if mode != "token":
        shown = f"{AUTH_MODE_VAR} is {mode!r}" if mode else f"{AUTH_MODE_VAR} is not set"
        return OrchestratorError(f"{where} requires token authentication and {shown}: {WHAT_TO_SET}")
    return OrchestratorError(f"{where} requires a token and {AUTH_MODE_VAR}=token finds none: {WHAT_TO_SET}")


def refused_token(where: str, env: Mapping[str, str] | None = None) -> OrchestratorError:
    """``where`` refused the token this process sent: one line naming where it came from and what to set."""
    source = token_source(env)
    if auth_mode(env) != "token" or source is None:
        return missing_token(where, env)
    return OrchestratorError(
        f"{where} refused the token from {source}: {WHAT_TO_SET} (the token the cluster was started with)"
    )


def check_gcs_token(address: str) -> None:
    """Ask the GCS at ``host:port`` once whether it accepts this process's token; one line if it does not.

    Reads nothing but the cluster ID (what every Ray client asks first). Uses Ray's GCS client
    (``ray._raylet.GcsClient``, the one private name read here): on a refusal it fails at once, where
    ``ray.init`` retries for 20 s. Any other failure is left to ``ray.init``, which reports it.
    """
    try:
        from ray._raylet import GcsClient
        from ray.exceptions import AuthenticationError
    except ImportError:  # pragma: no cover - a Ray without token authentication: ray.init decides
        return
    where = f"Ray cluster at {address!r}"
    try:
        with _quiet_stderr():  # Ray's C++ client logs each refused call on stderr; the one line below says it
            GcsClient(address=address)
    except AuthenticationError:
        raise (refused_token(where) if auth_mode() == "token" else missing_token(where)) from None
    except Exception:  # not ours to judge (a GCS still starting, another error): ray.init reports it
        return


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """File descriptor 2 goes to a temporary file for the block (C++ code writes there, not to ``sys.stderr``)."""
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)


def quiet_default_auth_warning() -> None:
    """Ray's "Token authentication is enabled for this Ray cluster" for a local Ray: the setting we intend."""
    logging.getLogger(_RAY_AUTH_LOGGER).setLevel(logging.ERROR)
