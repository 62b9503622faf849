"""The webhook on the Supabase store, against the local PostgREST stack (tests/supabase): the
trigger ``migrate --supabase --sql --webhook-url`` prints is installed in the project's
database (with the recording stand-in for ``supabase_functions.http_request``), a row is
inserted as the app would, its webhook call is delivered to ``pixelgrade hook``'s app, and the
score is written through the REST API, guarded, once."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from pixelgrade.sources.http import HttpPolicy
from pixelgrade.stores import SupabaseStore
from pixelgrade.web.hooks import HookSettings, create_hook_app
from tests.autoscore.conftest import install_http_request_standin, sent
from tests.autoscore.test_hook_cli import SECRET, migrate, webhook_sql
from tests.supabase.conftest import CLIENT_NOISE
from tests.supabase.helpers import ImageHost, count_updates, execute, make_table, rows, serve
from tests.supabase.helpers import updates as row_updates
from tests.supabase.stack import SupabaseStack

pytestmark = CLIENT_NOISE


@pytest.fixture
def image_host() -> Iterator[ImageHost]:
    yield from serve(ImageHost())


def test_an_insert_on_supabase_is_scored_through_the_rest_api(
        fresh_supabase: SupabaseStack, image_host: ImageHost) -> None:
    stack = fresh_supabase
    make_table(stack, [], functions=True)
    install_http_request_standin(stack.db_url)
    code, out, err = migrate("--supabase", "--sql", "--webhook-url",
                             "https://hook.example.com")
    assert code == 0, err
    for statement in webhook_sql(out):
        execute(stack, statement)
    count_updates(stack)
    execute(stack, "INSERT INTO images (url) VALUES (%s)", [image_host.url("/a.jpg")])
    [call] = sent(stack.db_url)
    assert call["payload"]["type"] == "INSERT" and call["payload"]["table"] == "images"

    store = SupabaseStore(stack.url, stack.service_key)
    settings = HookSettings(secret=SECRET, workers=1,
                            http=HttpPolicy(allow_private_network=True))
    stack.requests.clear()
    with TestClient(create_hook_app(store, settings)) as client:
        answer = client.post("/api/hooks/supabase", json=call["payload"],
                             headers=call["headers"])
        assert answer.status_code == 202, answer.text
        deadline = time.monotonic() + 30
        while rows(stack)[1]["quality_score"] is None:
            assert time.monotonic() < deadline, "the row was not scored"
            time.sleep(0.05)
    row = rows(stack)[1]
    assert row["quality_status"] == "scored" and 0 <= row["quality_score"] <= 100
    assert row_updates(stack) == {1: 1}
    # Read and written through the REST API only.
    assert any(method == "GET" and path.startswith("/rest/v1/images")
               for method, path, _ in stack.requests)
    assert any(method in ("POST", "PATCH") for method, _, _ in stack.requests)
    assert len(sent(stack.db_url)) == 1  # the score's write set no URL: no second call
