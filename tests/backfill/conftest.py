"""An image server for backfill tests: a real threaded ``http.server`` on 127.0.0.1:0.

Routes (``image_server.url(path)``):

* ``/good.jpg``, ``/good.png``, ``/good.webp``, ``/other.jpg``: sample photos from
  ``pixelgrade.samples``, each with its right Content-Type;
* ``/wrong-type.jpg``: a JPEG served as ``text/html`` (the bytes decide, not the header);
* ``/page.html``: an HTML page, 200; ``/vector.svg``: an SVG drawing;
* ``/missing.jpg``: 404; ``/error.jpg``: 500, always;
* ``/busy.jpg``: 429 with ``Retry-After: 1`` on the first request, the image afterwards;
* ``/slow.jpg``: headers only after ``SLOW_SECONDS`` (longer than the tests' read timeout);
* ``/truncated.jpg``: announces more bytes than it sends, then closes the connection;
* ``/flaky.jpg``: 500 while ``server.flaky_fails`` is true, the image afterwards;
* ``/delay/<anything>.jpg``: the image after ``server.delay`` seconds;
* anything else: 404, unless ``server.overrides`` has the path.

``server.hits`` counts requests per path. Handlers that wait do so on ``server.stop``, so
teardown does not wait for them.
"""

from __future__ import annotations

import threading
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from pixelgrade import samples

SLOW_SECONDS = 6.0


@cache
def photo(name: str = "coffee.png") -> np.ndarray:
    """A sample photo at half size (300x200): quick to score, still a real photo."""
    rgb = samples.load_photo(name)
    return np.ascontiguousarray(rgb[::2, ::2])


@cache
def jpeg(name: str = "coffee.png") -> bytes:
    return samples.encode(photo(name), "JPEG", quality=90)


@cache
def png(name: str = "coffee.png") -> bytes:
    return samples.encode(photo(name), "PNG")


@cache
def webp(name: str = "coffee.png") -> bytes:
    return samples.encode(photo(name), "WEBP", quality=85)


SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="40" height="30"><rect width="9"/></svg>'
HTML = b"<!doctype html><html><head><title>Not found</title></head><body>Oops</body></html>"


class ImageServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64  # many downloads start at once: no dropped SYN, no 1 s stall

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.hits: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.flaky_fails = True
        self.delay = 0.0
        #: path -> (body, content type), served instead of the route (a server "fixed").
        self.overrides: dict[str, tuple[bytes, str]] = {}

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that time out and hang up are part of the tests


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ImageServer

    def do_GET(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        server = self.server
        with server.lock:
            server.hits[path] += 1
            nth = server.hits[path]
        try:
            self._route(path, nth)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _route(self, path: str, nth: int) -> None:
        server = self.server
        images = {"/good.jpg": (jpeg(), "image/jpeg"), "/good.png": (png(), "image/png"),
                  "/good.webp": (webp(), "image/webp"),
                  "/other.jpg": (jpeg("chelsea.png"), "image/jpeg"),
                  "/wrong-type.jpg": (jpeg("astronaut.png"), "text/html; charset=utf-8")}
        if path in server.overrides:
            self._reply(200, *server.overrides[path])
        elif path in images:
            self._reply(200, *images[path])
        elif path == "/vector.svg":
            self._reply(200, SVG, "image/svg+xml")
        elif path == "/page.html":
            self._reply(200, HTML, "text/html")
        elif path == "/error.jpg":
            self._reply(500, b"internal error", "text/plain")
        elif path == "/busy.jpg":
            if nth == 1:
                self._reply(429, b"slow down", "text/plain", {"Retry-After": "1"})
            else:
                self._reply(200, jpeg("chelsea.png"), "image/jpeg")
        elif path == "/slow.jpg":
            server.stop.wait(SLOW_SECONDS)
            self._reply(200, jpeg(), "image/jpeg")
        elif path == "/truncated.jpg":
            body = jpeg()
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 3])
            self.wfile.flush()
            self.close_connection = True
        elif path == "/flaky.jpg":
            if server.flaky_fails:
                self._reply(500, b"try later", "text/plain")
            else:
                self._reply(200, jpeg("coins.png"), "image/jpeg")
        elif path.startswith("/delay/"):
            server.stop.wait(server.delay)
            self._reply(200, jpeg(), "image/jpeg")
        else:
            self._reply(404, b"not found", "text/plain")

    def _reply(self, status: int, body: bytes, content_type: str,
               headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def image_server() -> Iterator[ImageServer]:
    server = ImageServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
