"""``supabase_stack``: one Supabase-shaped API per test session (see stack.py).

Without npm or PostgreSQL the tests that use it are skipped on a laptop and FAIL in CI
(``CI=true``), as tests/conftest.py does for PostgreSQL.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PG_ADMIN_URL
from tests.supabase.stack import StackUnavailable, SupabaseStack

HERE = Path(__file__).parent
# supabase 2.34.1 passes its own deprecated ``timeout``/``verify`` arguments to its sub-clients
# on every create_client: noise we can neither fix nor act on.
CLIENT_NOISE = pytest.mark.filterwarnings(
    r"ignore:The '(timeout|verify)' parameter is deprecated:DeprecationWarning")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(CLIENT_NOISE)


@pytest.fixture(scope="session")
def supabase_stack() -> Iterator[SupabaseStack]:
    """The running stack: ``url``, ``service_key``, ``anon_key``, ``db_url``/``dsn`` (its own
    database), ``storage``, ``reload_schema()``, ``reset()``. Shared by the session: a test
    that needs an empty database calls ``reset()`` first (the ``fresh_supabase`` fixture)."""
    try:
        stack = SupabaseStack.start(PG_ADMIN_URL)
    except StackUnavailable as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the Supabase test stack is required in CI but cannot start: {exc}")
        pytest.skip(f"Supabase test stack unavailable: {exc}")
    with stack:
        yield stack


@pytest.fixture
def fresh_supabase(supabase_stack: SupabaseStack) -> SupabaseStack:
    """The session's stack with schema ``public``, Storage and the request log emptied."""
    supabase_stack.reset()
    return supabase_stack
