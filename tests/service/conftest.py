"""Fixtures of the service tests: the image server the backfill and watch tests use."""

from tests.backfill.conftest import image_server  # noqa: F401  (the fixture, shared)
