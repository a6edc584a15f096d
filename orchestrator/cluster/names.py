"""Kubernetes names and labels derived from study names, and the rules for names we are given
(pure functions, no I/O).

Study names may hold ``_`` and ``.`` and be long; Kubernetes wants DNS-1035 labels for
RayJob names (KubeRay derives Service names from them) and at most 63 characters for
label values. The full, unaltered values travel in annotations. Names taken from the user
(namespace, RayCluster, Secret) are checked by :func:`check_name` against the rule the API
server (or KubeRay) applies to that kind, before any object is built.
"""

from __future__ import annotations

import re
import secrets
import string
from dataclasses import dataclass

from orchestrator.cluster.errors import ClusterError

LABEL_PREFIX = "orchestrator.dev"
MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "orchestrator"
STUDY_LABEL = f"{LABEL_PREFIX}/study"
VERSION_LABEL = f"{LABEL_PREFIX}/version"
HASH_LABEL = f"{LABEL_PREFIX}/space-hash"
RAYJOB_LABEL = f"{LABEL_PREFIX}/rayjob"
STUDY_ANNOTATION = f"{LABEL_PREFIX}/study"
SPACE_FILE_ANNOTATION = f"{LABEL_PREFIX}/space-file"
CONTENT_HASH_ANNOTATION = f"{LABEL_PREFIX}/content-hash"

# KubeRay appends "-xxxxx" to a RayJob name for its RayCluster and "-serve-svc" (the longest
# suffix) to the cluster name; it rejects RayJob names longer than 47 characters.
MAX_RAYJOB_NAME = 47
MAX_LABEL_VALUE = 63
SUFFIX_LENGTH = 5

_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_SUFFIX_ALPHABET = string.ascii_lowercase + string.digits


def is_dns1035(name: str, max_length: int = 63) -> bool:
    """Whether ``name`` is a DNS-1035 label no longer than ``max_length``."""
    return NameRule(_DNS1035, max_length, "").matches(name)


@dataclass(frozen=True)
class NameRule:
    """A Kubernetes naming rule: a pattern, a length limit and how to say it in one line."""

    pattern: re.Pattern[str]
    max_length: int
    description: str

    def matches(self, name: str) -> bool:
        return len(name) <= self.max_length and bool(self.pattern.match(name))


DNS1123_LABEL = NameRule(
    _DNS1123_LABEL,
    63,
    "a DNS-1123 label: at most 63 lower-case letters, digits and '-', starting and ending alphanumeric",
)
DNS1123_SUBDOMAIN = NameRule(
    _DNS1123_SUBDOMAIN,
    253,
    "a DNS-1123 subdomain: at most 253 lower-case letters, digits, '-' and '.', each part starting and ending "
    "alphanumeric",
)
DNS1035_LABEL = NameRule(
    _DNS1035, 63, "a DNS-1035 label: at most 63 lower-case letters, digits and '-', starting with a letter"
)
RAYJOB_NAME = NameRule(
    _DNS1035,
    MAX_RAYJOB_NAME,
    f"a DNS-1035 label of at most {MAX_RAYJOB_NAME} characters (KubeRay's limit for RayJob names)",
)
# The rule the API server (or KubeRay, for its CRDs) applies to each kind of name we set.
NAMESPACE_RULE = DNS1123_LABEL
RAYCLUSTER_RULE = DNS1035_LABEL  # KubeRay derives Service names from it
CONFIGMAP_RULE = DNS1123_SUBDOMAIN
SECRET_RULE = DNS1123_SUBDOMAIN


def check_name(name: str, rule: NameRule, what: str) -> str:
    """``name`` if it follows ``rule``; else a ``ClusterError`` naming ``what`` (a flag) and the rule."""
    if not rule.matches(name):
        raise ClusterError(f"{what} {name!r} is not a valid Kubernetes name: use {rule.description}")
    return name


# A container image reference, as the distribution project's reference grammar (reference/regexp.go, which
# containerd and Kubernetes' kubelet follow) states it: [domain[:port]/]path[:tag][@digest], the name at most
# 255 characters. A reference outside it would only fail on the cluster, when a pod is scheduled.
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_IMAGE_REFERENCE = re.compile(rf"^(?P<name>{_NAME})(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$")
MAX_IMAGE_NAME = 255


def check_image(reference: str, what: str = "--image") -> str:
    """``reference`` if it is a valid container image reference (``_IMAGE_REFERENCE``); else a ``ClusterError``."""
    match = _IMAGE_REFERENCE.match(reference)
    if match is None or len(match["name"]) > MAX_IMAGE_NAME:
        raise ClusterError(
            f"{what} {reference!r} is not a container image reference: use [registry[:port]/]name[:tag][@digest], "
            "the name in lower case letters, digits and . _ - / (for example ghcr.io/team/orchestrator:1.2)"
        )
    return reference


def label_value(text: str) -> str:
    """``text`` made into a valid label value: invalid characters become ``-``, cut to 63."""
    value = re.sub(r"[^-A-Za-z0-9_.]", "-", text)[:MAX_LABEL_VALUE]
    return value.strip("-_.")


def dns_label(text: str, max_length: int) -> str:
    """``text`` as a DNS-1035 label (lower case, starts with a letter), <= ``max_length``."""
    name = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    if not name or not name[0].isalpha():
        name = f"s-{name}".rstrip("-")
    return name[:max_length].rstrip("-")


def random_suffix(length: int = SUFFIX_LENGTH) -> str:
    """Lower-case letters and digits, for names that must not collide between submissions."""
    return "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(length))


def rayjob_name(study: str, version: int, suffix: str) -> str:
    """``<study>-v<version>-<suffix>``, shortened so KubeRay accepts it (<= 47 characters)."""
    tail = f"-v{version}-{suffix}"
    head = dns_label(study, MAX_RAYJOB_NAME - len(tail))
    name = f"{head}{tail}"
    if not is_dns1035(name, MAX_RAYJOB_NAME):
        raise ValueError(f"cannot build a RayJob name from study {study!r} and suffix {suffix!r}")
    return name
