"""The Supabase store's part of the service: ``ping()`` (a request for no rows) and
``created_times()`` (the insert-to-score times), against the real PostgREST stack."""

from __future__ import annotations

from datetime import UTC, datetime

from pixelgrade.service.health import HealthCheck
from pixelgrade.service.metrics import seconds_since
from pixelgrade.stores import SupabaseStore
from pixelgrade.stores.base import Outcome, Selection
from tests.supabase.conftest import CLIENT_NOISE, fresh_supabase, supabase_stack  # noqa: F401
from tests.supabase.helpers import execute, make_table
from tests.supabase.stack import SupabaseStack

pytestmark = CLIENT_NOISE


def test_ping_and_creation_times_over_rest(fresh_supabase: SupabaseStack) -> None:  # noqa: F811
    stack = fresh_supabase
    make_table(stack, ["a.jpg", "b.jpg", "c.jpg"], migrate=True)
    store = SupabaseStore(stack.url, stack.service_key)
    assert store.sort_keys.created_column is None
    assert store.created_times([1, 2]) == {}  # no creation column: no insert-to-score time
    execute(stack, "ALTER TABLE images ADD COLUMN created_at timestamptz NOT NULL "
                   "DEFAULT now() - interval '5 seconds'")
    stack.reload_schema()
    store = SupabaseStore(stack.url, stack.service_key)
    assert store.sort_keys.created_column == "created_at"
    health = HealthCheck(store)
    assert health.check().checks == {"database": None}
    times = store.created_times([1, 3, 99])
    assert set(times) == {1, 3}
    now = datetime.now(UTC)
    assert all(4 <= (seconds_since(value, now) or 0) < 60 for value in times.values()), times
    # A row re-opened by a URL change has no insert-to-score time (only first results do).
    assert store.write(Selection(), [Outcome(1, "scored", 80, None, source="a.jpg")]) == 1
    execute(stack, "UPDATE images SET url = 'new-a.jpg' WHERE id = 1")
    assert set(store.created_times([1, 3])) == {3}
    execute(stack, "DROP TABLE images")
    stack.reload_schema()
    problem = health.check().checks["database"]
    assert problem is not None and problem.startswith("cannot be reached: "), problem
    assert stack.service_key not in problem

