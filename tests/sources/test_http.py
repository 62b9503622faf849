"""The HTTP source against a real local server: status handling, retries, size caps, redaction.

Each test registers handlers for paths on a threaded ``http.server`` bound to 127.0.0.1:0. The
fetcher's sleep is replaced by a recorder, so retry waits are measured, not waited.
"""

from __future__ import annotations

import asyncio
import email.utils
import gzip
import io
import random
import socket
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from pixelgrade.errors import FetchError, ImageTooLargeError
from pixelgrade.sources import http as http_source
from pixelgrade.sources.http import (
    HttpFetcher,
    HttpPolicy,
    backoff_delay,
    parse_retry_after,
    read_url,
    redact_url,
)

Handler = Callable[["_RequestHandler", int], None]


def _jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 120, 40)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


JPEG = _jpeg_bytes()


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        server = self.server
        with server.lock:
            server.hits[path] += 1
            nth = server.hits[path]
            server.in_flight += 1
            server.max_in_flight = max(server.max_in_flight, server.in_flight)
            server.headers_seen.append(dict(self.headers))
        try:
            handler = server.routes.get(path)
            if handler is None:
                reply(self, 404, b"not found")
            else:
                handler(self, nth)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client hung up first, as some tests intend
        finally:
            with server.lock:
                server.in_flight -= 1

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _RequestHandler)
        self.routes: dict[str, Handler] = {}
        self.hits: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.headers_seen: list[dict[str, str]] = []
        self.stop = threading.Event()  # stalled handlers wait on this, so teardown is quick

    def url(self, path: str, *, userinfo: str = "") -> str:
        return f"http://{userinfo}127.0.0.1:{self.server_address[1]}{path}"

    def route(self, path: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.routes[path] = handler
            return handler
        return register

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client closing early is expected in several tests


def reply(handler: _RequestHandler, status: int, body: bytes = b"",
          headers: dict[str, str] | None = None) -> None:
    handler.send_response(status)
    headers = {"Content-Type": "application/octet-stream", **(headers or {})}
    for name, value in headers.items():
        handler.send_header(name, value)
    if "Content-Length" not in headers:
        handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.stop.set()
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy from the environment must not swallow requests to 127.0.0.1."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                 "all_proxy"):
        monkeypatch.delenv(name, raising=False)


class SleepRecorder:
    """Stands in for asyncio.sleep: records the delays, waits only a tick."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


def loopback(**limits: Any) -> HttpPolicy:
    """A policy for the test server, which is on loopback: the SSRF guard must be told."""
    return HttpPolicy(allow_private_network=True, **limits)


LOOPBACK = loopback()
FAST = loopback(connect_timeout=2.0, read_timeout=2.0, total_timeout=5.0, retries=3)


def fetch(url: str, policy: HttpPolicy = FAST, *, sleep: SleepRecorder | None = None,
          concurrency: int = 4) -> bytes:
    async def run() -> bytes:
        async with HttpFetcher(policy, concurrency=concurrency, sleep=sleep or SleepRecorder(),
                               rng=random.Random(1)) as fetcher:
            return await fetcher.fetch(url)
    return asyncio.run(run())


def fetch_error(url: str, policy: HttpPolicy = FAST, *,
                sleep: SleepRecorder | None = None) -> FetchError:
    with pytest.raises(FetchError) as caught:
        fetch(url, policy, sleep=sleep)
    return caught.value


# --- success -----------------------------------------------------------------------------------


def test_ok_jpeg_is_returned_byte_for_byte(server: _Server) -> None:
    server.route("/cat.jpg")(lambda h, n: reply(h, 200, JPEG, {"Content-Type": "image/jpeg"}))
    assert fetch(server.url("/cat.jpg")) == JPEG
    sent = server.headers_seen[0]
    assert sent["User-Agent"].startswith("pixelgrade")
    assert sent["Accept-Encoding"] == "identity"


def test_content_type_is_ignored(server: _Server) -> None:
    server.route("/page")(lambda h, n: reply(h, 200, JPEG, {"Content-Type": "text/html"}))
    assert fetch(server.url("/page")) == JPEG


def test_works_without_h2_installed(server: _Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_source, "_h2_available", lambda: False)
    server.route("/cat.jpg")(lambda h, n: reply(h, 200, JPEG))
    assert fetch(server.url("/cat.jpg")) == JPEG


def test_gzip_body_sent_anyway_is_decoded(server: _Server) -> None:
    server.route("/gz")(lambda h, n: reply(h, 200, gzip.compress(JPEG),
                                           {"Content-Encoding": "gzip"}))
    assert fetch(server.url("/gz")) == JPEG


# --- status codes and retries ------------------------------------------------------------------


def test_404_is_permanent_and_not_retried(server: _Server) -> None:
    sleep = SleepRecorder()
    error = fetch_error(server.url("/gone.jpg"), sleep=sleep)
    assert (error.kind, error.transient, error.attempts) == ("http_404", False, 1)
    assert "HTTP 404 Not Found" in str(error)
    assert server.url("/gone.jpg") in str(error)
    assert server.hits["/gone.jpg"] == 1
    assert sleep.delays == []


def test_500_twice_then_200_succeeds_after_retries(server: _Server) -> None:
    @server.route("/flaky")
    def flaky(h: _RequestHandler, nth: int) -> None:
        if nth <= 2:
            reply(h, 500, b"oops")
        else:
            reply(h, 200, JPEG)

    sleep = SleepRecorder()
    assert fetch(server.url("/flaky"), sleep=sleep) == JPEG
    assert server.hits["/flaky"] == 3
    assert len(sleep.delays) == 2
    assert 0 <= sleep.delays[0] <= FAST.backoff_base
    assert 0 <= sleep.delays[1] <= FAST.backoff_base * 2


def test_always_503_is_transient_after_all_attempts(server: _Server) -> None:
    server.route("/down")(lambda h, n: reply(h, 503, b"busy"))
    sleep = SleepRecorder()
    error = fetch_error(server.url("/down"), sleep=sleep)
    assert (error.kind, error.transient, error.attempts) == ("http_503", True, FAST.retries + 1)
    assert server.hits["/down"] == FAST.retries + 1
    assert len(sleep.delays) == FAST.retries
    assert "after 4 attempts" in str(error)
    assert "try again later" in str(error)


def test_429_retry_after_seconds_is_waited_exactly(server: _Server) -> None:
    @server.route("/limited")
    def limited(h: _RequestHandler, nth: int) -> None:
        if nth == 1:
            reply(h, 429, b"slow down", {"Retry-After": "1"})
        else:
            reply(h, 200, JPEG)

    sleep = SleepRecorder()
    assert fetch(server.url("/limited"), sleep=sleep) == JPEG
    assert sleep.delays == [pytest.approx(1.0)]


def test_503_retry_after_http_date_is_honoured(server: _Server) -> None:
    @server.route("/later")
    def later(h: _RequestHandler, nth: int) -> None:
        if nth == 1:
            when = email.utils.formatdate(time.time() + 3, usegmt=True)
            reply(h, 503, b"", {"Retry-After": when})
        else:
            reply(h, 200, JPEG)

    sleep = SleepRecorder()
    assert fetch(server.url("/later"), sleep=sleep) == JPEG
    assert len(sleep.delays) == 1
    assert 1.5 < sleep.delays[0] <= 3.1


def test_429_retry_after_too_long_fails_transient_at_once(server: _Server) -> None:
    server.route("/busy")(lambda h, n: reply(h, 429, b"", {"Retry-After": "3600"}))
    sleep = SleepRecorder()
    error = fetch_error(server.url("/busy"), sleep=sleep)
    assert (error.kind, error.transient, error.attempts) == ("http_429", True, 1)
    assert sleep.delays == []
    assert server.hits["/busy"] == 1
    assert "lower --rate or --concurrency" in str(error)
    assert "3,600 s" in str(error)


# --- timeouts and broken bodies ----------------------------------------------------------------


def test_stalled_body_times_out_as_transient(server: _Server) -> None:
    @server.route("/stall")
    def stall(h: _RequestHandler, nth: int) -> None:
        reply(h, 200, JPEG[:10], {"Content-Length": str(len(JPEG))})
        h.wfile.flush()
        server.stop.wait(3)

    policy = loopback(read_timeout=0.2, retries=1)
    started = time.monotonic()
    error = fetch_error(server.url("/stall"), policy)
    assert time.monotonic() - started < 2
    assert (error.kind, error.transient, error.attempts) == ("timeout", True, 2)
    assert "0.2 s" in str(error)


def test_slow_headers_time_out(server: _Server) -> None:
    @server.route("/slow")
    def slow(h: _RequestHandler, nth: int) -> None:
        server.stop.wait(3)

    error = fetch_error(server.url("/slow"), loopback(read_timeout=0.2, retries=0))
    assert (error.kind, error.transient, error.attempts) == ("timeout", True, 1)


def test_trickling_body_hits_the_total_timeout(server: _Server) -> None:
    @server.route("/trickle")
    def trickle(h: _RequestHandler, nth: int) -> None:
        reply(h, 200, b"", {"Content-Length": "1000"})
        for _ in range(100):
            h.wfile.write(b"x")
            h.wfile.flush()
            if server.stop.wait(0.05):
                return

    policy = loopback(read_timeout=1.0, total_timeout=0.4, retries=0)
    started = time.monotonic()
    error = fetch_error(server.url("/trickle"), policy)
    assert time.monotonic() - started < 1.5
    assert (error.kind, error.transient) == ("timeout", True)
    assert "longer than 0.4 s" in str(error)


def test_truncated_body_is_transient(server: _Server) -> None:
    @server.route("/short")
    def short(h: _RequestHandler, nth: int) -> None:
        reply(h, 200, JPEG[:100], {"Content-Length": "10000"})
        h.close_connection = True

    error = fetch_error(server.url("/short"), loopback(retries=1))
    assert (error.kind, error.transient, error.attempts) == ("truncated", True, 2)
    assert "100 of 10,000 bytes" in str(error)


def test_connection_refused_is_transient_and_says_what_to_do() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    error = fetch_error(f"http://127.0.0.1:{port}/x.jpg", loopback(retries=1))
    assert (error.kind, error.transient, error.attempts) == ("connection", True, 2)
    assert "reachable from this machine" in str(error)


# --- size caps ---------------------------------------------------------------------------------


def test_announced_length_over_cap_is_refused_before_the_body(server: _Server) -> None:
    @server.route("/huge")
    def huge(h: _RequestHandler, nth: int) -> None:
        reply(h, 200, b"", {"Content-Length": str(10**9)})
        h.wfile.flush()
        server.stop.wait(3)  # never sends the body: reading it would hit the read timeout

    sleep = SleepRecorder()
    started = time.monotonic()
    with pytest.raises(ImageTooLargeError, match="announces 1,000,000,000 bytes"):
        fetch(server.url("/huge"), loopback(max_bytes=1000, read_timeout=2.0), sleep=sleep)
    assert time.monotonic() - started < 1.5
    assert server.hits["/huge"] == 1 and sleep.delays == []


def test_chunked_body_over_cap_is_refused_while_streaming(server: _Server) -> None:
    @server.route("/endless")
    def endless(h: _RequestHandler, nth: int) -> None:
        h.send_response(200)
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        chunk = b"\xff" * 16384
        for _ in range(200):  # 3.2 MB if the client read it all
            h.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        h.wfile.write(b"0\r\n\r\n")

    with pytest.raises(ImageTooLargeError, match="exceeded the 100,000-byte limit"):
        fetch(server.url("/endless"), loopback(max_bytes=100_000))
    assert server.hits["/endless"] == 1


def test_gzip_bomb_is_refused_while_decoding(server: _Server) -> None:
    bomb = gzip.compress(b"\0" * 5_000_000)
    server.route("/bomb")(lambda h, n: reply(h, 200, bomb, {"Content-Encoding": "gzip"}))
    assert len(bomb) < 100_000
    with pytest.raises(ImageTooLargeError):
        fetch(server.url("/bomb"), loopback(max_bytes=100_000))


def test_body_cap_never_holds_more_than_cap_plus_one_chunk() -> None:
    body = http_source._Body(HttpPolicy(max_bytes=1000), "http://h/x", "identity", None)
    for _ in range(3):
        body.feed(b"a" * 300)
    with pytest.raises(ImageTooLargeError):
        body.feed(b"a" * 300)
    assert body.size == 1200

    bomb = gzip.compress(b"\0" * 10_000_000)
    body = http_source._Body(HttpPolicy(max_bytes=1000), "http://h/x", "gzip", None)
    with pytest.raises(ImageTooLargeError):
        body.feed(bomb)
    assert body.size == 1001  # decompression stopped one byte past the cap


# --- redirects ---------------------------------------------------------------------------------


def test_redirect_chain_within_limit_is_followed(server: _Server) -> None:
    for step in range(1, 4):
        target = f"/hop{step + 1}" if step < 3 else "/final.jpg"
        server.route(f"/hop{step}")(
            lambda h, n, target=target: reply(h, 302, b"moved", {"Location": target}))
    server.route("/final.jpg")(lambda h, n: reply(h, 200, JPEG))
    assert fetch(server.url("/hop1")) == JPEG
    assert server.hits["/final.jpg"] == 1


def test_redirect_loop_is_permanent_too_many_redirects(server: _Server) -> None:
    server.route("/loop")(lambda h, n: reply(h, 301, b"", {"Location": "/loop"}))
    sleep = SleepRecorder()
    error = fetch_error(server.url("/loop"), loopback(max_redirects=5), sleep=sleep)
    assert (error.kind, error.transient, error.attempts) == ("too_many_redirects", False, 1)
    assert server.hits["/loop"] == 6  # the first request and 5 redirects
    assert sleep.delays == []


def test_redirect_to_unsupported_scheme_is_permanent(server: _Server) -> None:
    server.route("/ftp")(lambda h, n: reply(h, 302, b"", {"Location": "ftp://example.com/a"}))
    error = fetch_error(server.url("/ftp"))
    assert (error.kind, error.transient) == ("invalid_url", False)


# --- URLs and messages -------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["ftp://example.com/a.jpg", "not a url", "http://",
                                 "http://exa mple.com/a.jpg", "http://[::1/a.jpg"])
def test_invalid_urls_are_permanent(url: str) -> None:
    error = fetch_error(url)
    assert (error.kind, error.transient, error.attempts) == ("invalid_url", False, 1)


def test_password_and_query_tokens_never_appear_in_messages(server: _Server) -> None:
    url = server.url("/private.jpg?token=t0ps3cr3tvalue", userinfo="alice:hunter2pass@")
    error = fetch_error(url)
    assert error.kind == "http_404"
    message = str(error)
    assert "hunter2pass" not in message and "alice" not in message
    assert "t0ps3cr3tvalue" not in message
    assert server.url("/private.jpg?…") in message

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    error = fetch_error(f"http://alice:hunter2pass@127.0.0.1:{port}/x?sig=t0ps3cr3tvalue",
                        loopback(retries=0))
    assert "hunter2pass" not in str(error) and "t0ps3cr3tvalue" not in str(error)


def test_redact_url_examples() -> None:
    assert redact_url("https://u:p@cdn.example.com:8443/a/b.jpg?sig=abc#frag") == (
        "https://cdn.example.com:8443/a/b.jpg?…")
    assert redact_url("HTTP://example.com/a.jpg") == "http://example.com/a.jpg"
    assert redact_url("http://u:p@[::1/a?x=1") == "http://[::1/a?…"


@given(user=st.text("abcdefghijklmnop", min_size=6, max_size=12),
       password=st.text("ABCDEFGHIJ0123456789!$*", min_size=8, max_size=20),
       token=st.text("qrstuvwxyzQRSTUVWXYZ", min_size=8, max_size=20))
def test_redact_url_drops_credentials_and_query_values(user: str, password: str,
                                                       token: str) -> None:
    shown = redact_url(f"https://{user}:{password}@img.example.org/p/1.jpg?token={token}")
    assert shown == "https://img.example.org/p/1.jpg?…"


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now=1445412480.0) == 30.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_backoff_is_full_jitter_capped() -> None:
    policy = loopback(backoff_base=0.5, backoff_max=4.0)
    rng = random.Random(7)
    for retry, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (10, 4.0)]:
        delays = [backoff_delay(policy, retry, rng) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8


# --- concurrency -------------------------------------------------------------------------------


def test_concurrency_bounds_requests_in_flight(server: _Server) -> None:
    @server.route("/slowish.jpg")
    def slowish(h: _RequestHandler, nth: int) -> None:
        server.stop.wait(0.15)
        reply(h, 200, JPEG)

    async def run() -> list[bytes]:
        async with HttpFetcher(FAST, concurrency=3) as fetcher:
            return await asyncio.gather(
                *(fetcher.fetch(server.url(f"/slowish.jpg?i={i}")) for i in range(12)))

    started = time.monotonic()
    results = asyncio.run(run())
    assert results == [JPEG] * 12
    assert server.max_in_flight == 3  # bounded, and the bound is actually used
    assert time.monotonic() - started >= 0.15 * 4 * 0.9  # 12 requests, 3 at a time


# --- the synchronous reader used by `pixelgrade score URL` -----------------------------------


def test_read_url_shares_the_rules(server: _Server) -> None:
    server.route("/cat.jpg")(lambda h, n: reply(h, 200, JPEG, {"Content-Type": "text/plain"}))
    assert read_url(server.url("/cat.jpg"), 1_000_000, policy=LOOPBACK) == JPEG

    with pytest.raises(ImageTooLargeError):
        read_url(server.url("/cat.jpg"), 100, policy=LOOPBACK)

    with pytest.raises(FetchError) as caught:
        read_url(server.url("/missing.jpg", userinfo="bob:s3cretpw@"), 1_000_000,
                 policy=LOOPBACK)
    assert (caught.value.kind, caught.value.transient, caught.value.attempts) == (
        "http_404", False, 1)
    assert "s3cretpw" not in str(caught.value)


def test_read_url_retries_transient_failures(server: _Server) -> None:
    @server.route("/flaky")
    def flaky(h: _RequestHandler, nth: int) -> None:
        reply(h, 502 if nth == 1 else 200, JPEG)

    policy = loopback(backoff_base=0.01)
    assert read_url(server.url("/flaky"), 1_000_000, policy=policy) == JPEG
    assert server.hits["/flaky"] == 2
