"""The one redaction rule: credentials in URIs and values of secret-looking keys (stdlib, and PyYAML for YAML).

Everything the project prints, logs to MLflow, writes under storage or puts into a
Kubernetes object goes through these functions first:

* :func:`redact_uri` drops ``user:password@`` from a URI and masks the values of secret-looking
  query parameters (``?token=...``, ``password=...``);
* :func:`redact_text` does the same for every URI inside free text (an exception message), and masks a
  ``Bearer <token>`` (an HTTP authorization, as Ray's token travels);
* :func:`is_secret_key` says whether a key names a secret, by :data:`SECRET_WORDS`;
* :func:`redact_config` replaces the values of such keys, at any depth, by :data:`REDACTED`;
  :func:`redacted_value` is what it records for one entry;
* :func:`mask_yaml_secrets` does it to a YAML document (a space file), or says it holds none.

A key is secret when one of its words is in :data:`SECRET_WORDS` (or is one plus ``s``), or two
neighbouring words form one of :data:`SECRET_WORD_PAIRS`. Words are what remains after
splitting the key at ``.``, ``/``, ``-``, ``_``, spaces and camelCase humps, lower-cased:
``optimizer.api_key``, ``db_password``, ``MLFLOW_TRACKING_TOKEN`` and ``apiKey`` are secret;
``tokenizer``, ``passes`` and ``author`` are not.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

REDACTED = "***"
SECRET_WORDS = frozenset(
    {
        "password",
        "passwd",
        "passphrase",
        "secret",
        "token",
        "apikey",
        "accesskey",
        "privatekey",
        "credential",
        "credentials",
        "auth",
    }
)
SECRET_WORD_PAIRS = frozenset({("api", "key"), ("access", "key"), ("private", "key")})

_CAMEL_HUMP = re.compile(r"([a-z0-9])([A-Z])")
_WORD_SEPARATORS = re.compile(r"[._/\-\s]+")
# A URI inside free text: scheme://, then everything up to whitespace or a quote.
_AUTHORITY_END = re.compile(r"[/?#]")
_URI_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]+")
_BEARER = re.compile(r"\b(Bearer)\s+[A-Za-z0-9._~+/=-]*[A-Za-z0-9_~+/=-]", re.IGNORECASE)  # no final "."


def _words(name: str) -> list[str]:
    return [w for w in _WORD_SEPARATORS.split(_CAMEL_HUMP.sub(r"\1_\2", name).lower()) if w]


def is_secret_key(name: str) -> bool:
    """Whether ``name`` (a key or a dotted/underscored path) names a secret; see the module docstring."""
    words = _words(name)
    if any(w in SECRET_WORDS or (w.endswith("s") and w[:-1] in SECRET_WORDS) for w in words):
        return True
    return any(pair in SECRET_WORD_PAIRS for pair in itertools.pairwise(words))


def _redact_query(query: str) -> str:
    parts = []
    for part in query.split("&"):
        key, eq, _value = part.partition("=")
        parts.append(f"{key}={REDACTED}" if eq and is_secret_key(unquote(key)) else part)
    return "&".join(parts)


def redact_uri(uri: str) -> str:
    """``uri`` without ``user:password@`` and with secret-looking query values masked.

    Text without ``://`` comes back unchanged. Parsed by hand rather than with ``urllib``,
    which leaves the credentials of a scheme it does not recognise (``my_store://u:p@host``)
    in the path.
    """
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return uri
    split = _AUTHORITY_END.search(rest)
    authority, rest = (rest[: split.start()], rest[split.start() :]) if split else (rest, "")
    before, question, query = rest.partition("?")
    if question:
        query, hash_, fragment = query.partition("#")
        rest = f"{before}?{_redact_query(query)}{hash_}{fragment}"
    return f"{scheme}://{authority.rpartition('@')[2]}{rest}"


def redact_text(text: str) -> str:
    """``text`` with :func:`redact_uri` applied to every URI in it, and every ``Bearer <token>`` masked."""
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    return _URI_IN_TEXT.sub(lambda m: redact_uri(m.group(0)), text)


def _redact_value(value: Any) -> Any:
    if isinstance(value, Mapping):
        return redact_config(value)
    if isinstance(value, list | tuple):
        return [_redact_value(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def redacted_value(key: str, value: Any) -> Any:
    """What is recorded for the entry ``key: value``: :data:`REDACTED` for a secret-looking key, else ``value``
    with nested secrets masked and URI credentials dropped (the space model matches a fixed entry by it)."""
    return REDACTED if is_secret_key(str(key)) else _redact_value(value)


def redact_config(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``mapping`` with the values of secret-looking keys replaced by :data:`REDACTED`.

    Nested mappings and lists are walked; other strings lose URI credentials (:func:`redact_text`).
    """
    return {key: redacted_value(key, value) for key, value in mapping.items()}


def mask_yaml_secrets(text: str) -> str | None:
    """The YAML document ``text`` dumped again with :func:`redact_config` applied, or ``None`` when that changes
    nothing (the text can then be kept as it is, comments and all)."""
    import yaml

    data = yaml.safe_load(text)
    if not isinstance(data, Mapping):
        return None
    masked = redact_config(data)
    return None if masked == data else yaml.safe_dump(masked, sort_keys=False)
