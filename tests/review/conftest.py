"""Fixtures of the review tests: the engine tests' local Ray."""

from tests.engine.conftest import _ray_session, local_ray  # noqa: F401  (fixtures)
