"""Issue 7, part 5: rows that point at the machine's own network or files.

A backfill over a table holding the usual SSRF and path-traversal payloads (loopback in every
spelling, cloud metadata, private ranges, other schemes, ``..``, symlinks out of the root, a
FIFO, ``/dev/zero``) must refuse each one before connecting or opening, record it as failed
with the reason, and score the honest rows around it. Then the opt-ins: ``--allow-host`` and
``--allow-private-network`` on the command line, and the origin of ``--url-template``, which
is trusted exactly (a redirect out of it is checked like any other URL).
"""

from __future__ import annotations

import io
import json
import os
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from pixelgrade.backfill import BackfillOptions, EngineOptions, run_backfill
from pixelgrade.backfill.progress import PlainProgress
from pixelgrade.cli import app
from pixelgrade.sources.http import HttpPolicy
from pixelgrade.stores import open_store
from tests.backfill.conftest import jpeg
from tests.reliability.report import record
from tests.stores import tables

runner = CliRunner()
#: Quick timeouts; note: no allow_private_network here, the default is what is tested.
POLICY = HttpPolicy(connect_timeout=3.0, read_timeout=3.0, total_timeout=10.0, retries=0,
                    http2=False)


class _Server(ThreadingHTTPServer):
    """Serves /good.jpg, and /to-<name> redirects to ``self.redirects[name]``."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.hits: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.redirects: dict[str, str] = {}

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.hits[self.path] += 1
        name = self.path.removeprefix("/to-")
        if self.path == "/good.jpg":
            self._reply(200, jpeg(), {"Content-Type": "image/jpeg"})
        elif name in self.server.redirects:
            self._reply(302, b"", {"Location": self.server.redirects[name]})
        else:
            self._reply(404, b"not found", {})

    def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def servers() -> Iterator[tuple[_Server, _Server]]:
    """The image server, and a second one that must never be reached."""
    started = [_Server(), _Server()]
    threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05},
                                daemon=True) for s in started]
    for thread in threads:
        thread.start()
    try:
        yield started[0], started[1]
    finally:
        for server, thread in zip(started, threads, strict=True):
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    (folder / "photos").mkdir(parents=True)
    (folder / "photos" / "good.jpg").write_bytes(jpeg())
    (tmp_path / "secret.jpg").write_bytes(jpeg())  # a real image, just outside the root
    (folder / "escape.jpg").symlink_to(tmp_path / "secret.jpg")
    os.mkfifo(folder / "pipe.jpg")
    return folder


def _hostile_urls(port: int) -> list[str]:
    return [f"http://127.0.0.1:{port}/good.jpg", f"http://localhost:{port}/good.jpg",
            f"http://2130706433:{port}/good.jpg", f"http://0x7f.1:{port}/good.jpg",
            f"http://127.1:{port}/good.jpg",
            f"http://[::ffff:127.0.0.1]:{port}/good.jpg", f"http://[::1]:{port}/good.jpg",
            f"http://0.0.0.0:{port}/good.jpg", "http://169.254.169.254/latest/meta-data/",
            "http://[::ffff:a9fe:a9fe]/latest/meta-data/", "http://[fd00:ec2::254]/latest/",
            "http://10.0.0.1/a.jpg", "http://172.16.0.1/a.jpg", "http://192.168.1.1/a.jpg",
            "http://100.64.0.1/a.jpg", "http://224.0.0.1/a.jpg", "http://[fe80::1]/a.jpg"]


#: Refused as invalid URLs before any lookup: httpx reads a dotted quad with a leading zero
#: as an error rather than as octal.
MALFORMED = ["http://0177.0.0.1/good.jpg", "http://[::ffff:127.0.0.1/a.jpg", "http:///a.jpg"]
SCHEMES = ["file:///etc/passwd", "FILE:///etc/shadow", "ftp://example.com/a.jpg",
           "gopher://127.0.0.1:70/_stats", "dict://127.0.0.1:11211/stats",
           "data:image/png;base64,iVBORw0KGgo="]
PATHS = {"../secret.jpg": "outside_root", "photos/../../secret.jpg": "outside_root",
         "/etc/passwd": "outside_root", "escape.jpg": "outside_root",
         "pipe.jpg": "not_a_file", "/dev/zero": "outside_root", "photos": "not_a_file"}


def _run(db_url: str, tmp_path: Path, **options: Any) -> Any:
    store = open_store(db_url)
    console = Console(file=io.StringIO(), width=200)
    try:
        return run_backfill(store, BackfillOptions(
            engine=EngineOptions(batch_size=8), workers=1, concurrency=4, http=POLICY,
            checkpoint=tmp_path / "checkpoint.json", error_log=tmp_path / "errors.log",
            **options), console, PlainProgress(console), install_signal_handlers=False)
    finally:
        store.close()


def _error_kinds(tmp_path: Path) -> dict[str, str]:
    lines = (tmp_path / "errors.log").read_text().splitlines()
    return {json.loads(line)["id"]: json.loads(line)["kind"] for line in lines}


def test_hostile_rows_fail_with_the_reason_and_the_run_goes_on(
        db_url: str, servers: tuple[_Server, _Server], root: Path, tmp_path: Path) -> None:
    server, _ = servers
    urls = _hostile_urls(server.port)
    honest = ["photos/good.jpg", str(root / "photos" / "good.jpg")]
    locations = [*honest, *urls, *MALFORMED, *SCHEMES, *PATHS]
    ids = tables.pixelgrade_table(db_url, locations)

    report = _run(db_url, tmp_path, root=root)

    assert report.finished and report.processed == len(locations)
    assert (report.scored, report.failed, report.retry_later) == (
        len(honest), len(locations) - len(honest), 0)
    rows = tables.rows(db_url)
    kinds = _error_kinds(tmp_path)
    expected = (["forbidden_address"] * len(urls) + ["invalid_url"] * len(MALFORMED)
                + ["unsupported_scheme"] * len(SCHEMES) + [*PATHS.values()])
    for row_id, location, kind in zip(ids[len(honest):], locations[len(honest):], expected,
                                      strict=True):
        row = rows[row_id]
        assert row["quality_status"] == "failed" and row["quality_score"] is None, location
        assert row["quality_details"]["kind"] == kind == kinds[row_id], location
        reason = row["quality_details"]["reason"]
        assert str(tmp_path) not in reason or str(tmp_path) in location, reason
    assert "--allow-private-network" in rows[ids[len(honest)]]["quality_details"]["reason"]
    metadata = ids[locations.index("http://169.254.169.254/latest/meta-data/")]
    assert "169.254.169.254, a link-local (cloud metadata) address" in rows[metadata][
        "quality_details"]["reason"]
    assert sum(server.hits.values()) == 0  # refused before connecting, every time
    assert all(rows[i]["quality_status"] == "scored" for i in ids[:len(honest)])
    record("ssrf", check_part="hostile rows", database=db_url.split(":", 1)[0].split("+")[0],
           urls_tried=len(urls) + len(MALFORMED), schemes_tried=len(SCHEMES),
           paths_tried=len(PATHS),
           refused=report.failed, requests_reaching_the_server=sum(server.hits.values()),
           honest_rows_scored=report.scored)


def test_the_url_template_origin_is_trusted_and_nothing_else(
        db_url: str, servers: tuple[_Server, _Server], tmp_path: Path) -> None:
    server, other = servers
    server.redirects.update({
        "metadata": "http://169.254.169.254/latest/meta-data/iam/",
        "other-port": f"http://127.0.0.1:{other.port}/good.jpg",
        "other-name": f"http://localhost:{server.port}/good.jpg",
        "decimal": f"http://2130706433:{other.port}/good.jpg",
        "file": "file:///etc/passwd",
        "self": f"http://127.0.0.1:{server.port}/good.jpg",  # stays on the origin: fine
    })
    locations = ["good.jpg", "to-self", "to-metadata", "to-other-port", "to-other-name",
                 "to-decimal", "to-file", f"http://localhost:{server.port}/good.jpg",
                 f"http://127.0.0.1:{other.port}/good.jpg"]
    ids = tables.pixelgrade_table(db_url, locations)

    report = _run(db_url, tmp_path,
                  url_template=f"http://127.0.0.1:{server.port}/{{path}}")

    assert (report.scored, report.failed, report.retry_later) == (2, 7, 0)
    kinds = _error_kinds(tmp_path)
    assert [kinds.get(i) for i in ids] == [
        None, None, "forbidden_address", "forbidden_address", "forbidden_address",
        "forbidden_address", "invalid_url", "forbidden_address", "forbidden_address"]
    assert server.hits["/good.jpg"] == 2 and sum(other.hits.values()) == 0
    record("ssrf", check_part="redirects out of the trusted --url-template origin",
           database=db_url.split(":", 1)[0].split("+")[0], urls_tried=len(locations),
           refused=report.failed, requests_reaching_the_other_server=0)


def _cli(*args: str) -> Any:
    return runner.invoke(app, list(args), env={"COLUMNS": "250"})


def test_the_command_line_opt_ins(servers: tuple[_Server, _Server], tmp_path: Path) -> None:
    server, _ = servers
    url = f"http://127.0.0.1:{server.port}/good.jpg"
    db = f"sqlite:///{tmp_path / 'images.db'}"
    tables.pixelgrade_table(db, [url, f"http://localhost:{server.port}/good.jpg"])
    common = ["backfill", "--db", db, "--workers", "1", "--json", "--retry-failed",
              "--checkpoint", str(tmp_path / "c.json"), "--error-log", str(tmp_path / "e.log")]

    refused = _cli(*common)
    assert refused.exit_code == 1, refused.output  # nothing could be scored
    assert json.loads(refused.stdout)["failed"] == 2 and sum(server.hits.values()) == 0
    assert "resolves to 127.0.0.1, a loopback address" in (tmp_path / "e.log").read_text()

    by_address = _cli(*common, "--allow-host", "127.0.0.1", "--allow-host", "::1")
    assert json.loads(by_address.stdout)["scored"] == 2, by_address.output  # both: by address
    bad = _cli(*common, "--allow-host", "10.0.0.0/99")
    assert bad.exit_code == 1 and "--allow-host" in bad.output

    scored = _cli("score", "--json", url)
    assert json.loads(scored.stdout)["status"] == "failed"
    assert "--allow-private-network" in json.loads(scored.stdout)["reason"]
    allowed = _cli("score", "--json", "--allow-private-network", url)
    assert json.loads(allowed.stdout)["status"] == "scored", allowed.output
    assert server.hits["/good.jpg"] == 3
    record("ssrf", check_part="command-line opt-ins", urls_tried=6, refused=3,
           allowed_by_opt_in=3)
