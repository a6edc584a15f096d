"""Fixtures of the production tests: the engine tests' local Ray (for the search whose model is predicted)."""

from tests.engine.conftest import _ray_session, local_ray  # noqa: F401  (fixtures)
