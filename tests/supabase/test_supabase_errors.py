"""Supabase failures sorted into transient (the engine retries the batch) and permanent (the
run stops with what to do), against the real PostgREST stack where that is cheap: a project
that does not answer, PostgREST down behind the gateway, a wrong key, a missing table, a
missing function, a revoked permission. Statuses the stack cannot produce on demand (429, a
503 from PostgREST, a proxy's HTML 500) come from a stub server answering exactly that.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pixelgrade.errors import StoreError
from pixelgrade.stores import Selection, SupabaseStore, TableSpec
from pixelgrade.stores import supabase as supabase_module
from pixelgrade.stores.base import Outcome
from tests.supabase.helpers import execute, make_table
from tests.supabase.stack import Storage, SupabaseStack, _Gateway, mint_key


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _refused(url: str, key: str, spec: TableSpec | None = None) -> tuple[StoreError, int]:
    """The error opening ``url`` raises, and how many times the store slept to retry it."""
    sleeps: list[float] = []
    with pytest.raises(StoreError) as error:
        SupabaseStore(url, key, spec, sleep=sleeps.append)
    assert key not in str(error.value)
    return error.value, len(sleeps)


# -- transient -----------------------------------------------------------------------------------


def test_a_project_that_does_not_answer_is_transient(supabase_stack: SupabaseStack) -> None:
    error, retries = _refused(f"http://127.0.0.1:{_closed_port()}", supabase_stack.service_key)
    assert error.transient and retries == supabase_module.ATTEMPTS - 1
    assert str(error).startswith("cannot reach Supabase project 127.0.0.1:")


@pytest.fixture
def gateway_without_postgrest(supabase_stack: SupabaseStack) -> Iterator[str]:
    """The stack's own gateway code with its PostgREST gone (a closed port): it answers every
    request 502 ``{"message": "PostgREST did not answer: ..."}``, a JSON body with no code."""
    gateway = _Gateway(_closed_port(), {"service_role": supabase_stack.service_key},
                       supabase_stack.jwt_secret, Storage())
    thread = threading.Thread(target=gateway.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{gateway.server_address[1]}"
    finally:
        gateway.shutdown()
        gateway.server_close()
        thread.join()


def test_postgrest_down_behind_the_gateway_is_transient(
        gateway_without_postgrest: str, supabase_stack: SupabaseStack) -> None:
    error, retries = _refused(gateway_without_postgrest, supabase_stack.service_key)
    assert error.transient and retries == supabase_module.ATTEMPTS - 1
    assert "PostgREST did not answer" in str(error) and "HTTP 502" in str(error)


ANSWERS = {
    "rate limited": (429, "application/json", {"message": "API rate limit exceeded"}),
    "database unreachable": (503, "application/json", {
        "code": "PGRST000", "message": "Could not connect with the database"}),
    "proxy page": (500, "text/html", "<html><body>Internal Server Error</body></html>"),
    "too many connections": (503, "application/json", {
        "code": "53300", "message": "sorry, too many clients already"}),
}


@pytest.fixture
def stub() -> Iterator[tuple[ThreadingHTTPServer, list[tuple[int, str, object]]]]:
    """An HTTP server giving every request the answer at the end of its list."""
    answers: list[tuple[int, str, object]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, content_type, body = answers[-1]
            data = (json.dumps(body) if content_type == "application/json" else str(body)
                    ).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_HEAD = do_POST = do_PATCH = do_GET

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, answers
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize("answer", ANSWERS, ids=list(ANSWERS))
def test_busy_or_restarting_answers_are_transient(
        answer: str, stub: tuple[ThreadingHTTPServer, list[tuple[int, str, object]]]) -> None:
    server, answers = stub
    answers.append(ANSWERS[answer])
    key = mint_key("k" * 40, "service_role")
    error, retries = _refused(f"http://127.0.0.1:{server.server_address[1]}", key)
    assert error.transient, str(error)
    assert retries == supabase_module.ATTEMPTS - 1


# -- permanent: not retried, and the message says what to do -----------------------------------


def test_a_wrong_key_is_permanent(fresh_supabase: SupabaseStack) -> None:
    make_table(fresh_supabase, ["a.jpg"])
    error, retries = _refused(fresh_supabase.url, mint_key("w" * 40, "service_role"))
    assert not error.transient and retries == 0
    assert "check SUPABASE_SERVICE_ROLE_KEY" in str(error)


def test_a_missing_table_is_permanent(fresh_supabase: SupabaseStack) -> None:
    make_table(fresh_supabase, ["a.jpg"])
    error, retries = _refused(fresh_supabase.url, fresh_supabase.service_key,
                              TableSpec(table="photos"))
    assert not error.transient and retries == 0
    assert "does not exist" in str(error) and "check --table" in str(error)


def test_a_function_dropped_during_a_run_is_permanent_and_says_to_migrate(
        fresh_supabase: SupabaseStack) -> None:
    stack = fresh_supabase
    make_table(stack, ["a.jpg"], functions=True)
    sleeps: list[float] = []
    store = SupabaseStore(stack.url, stack.service_key, sleep=sleeps.append)
    assert store.write_mode == "rpc"
    execute(stack, "DROP FUNCTION public.pixelgrade_write_scores")
    stack.reload_schema()
    with pytest.raises(StoreError) as error:
        store.write(Selection(), [Outcome(1, "scored", 80, {})])
    assert not error.value.transient and not sleeps
    assert "PGRST202" in str(error.value)
    assert "run `pixelgrade migrate --supabase --sql` and apply the SQL" in str(error.value)
    assert "Supabase SQL editor" in str(error.value)


def test_a_revoked_permission_is_permanent(fresh_supabase: SupabaseStack) -> None:
    stack = fresh_supabase
    make_table(stack, ["a.jpg"], migrate=True)
    sleeps: list[float] = []
    store = SupabaseStore(stack.url, stack.service_key, sleep=sleeps.append)
    assert store.write_mode == "patch"
    execute(stack, "REVOKE UPDATE ON public.images FROM service_role")
    with pytest.raises(StoreError) as error:
        store.write(Selection(), [Outcome(1, "scored", 80, {})])
    assert not error.value.transient and not sleeps
    assert "permission denied on table images" in str(error.value)
    assert "GRANT SELECT, INSERT, UPDATE ON images TO service_role" in str(error.value)
    assert stack.service_key not in str(error.value)
