"""``pixelgrade watch --metrics-port PORT --log-format json`` as a service runs it: a real
subprocess, scraped over HTTP while it scores rows another program inserts, stopped with
SIGTERM; every log line is JSON and none holds the database password."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from typer.testing import CliRunner

from pixelgrade.cli import app
from tests.backfill.conftest import ImageServer
from tests.service.test_metrics import images, samples, value
from tests.stores import tables
from tests.watch.conftest import insert, wait_for

PASSWORD = "Sup3r-s3cret-pw"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_watch_serves_metrics_and_health_while_it_runs(pg_url: str, image_server: ImageServer,
                                                       tmp_path: Path) -> None:
    tables.pixelgrade_table(pg_url, [image_server.url("/good.jpg")])  # with the trigger
    # Trust authentication: the password is accepted and must never be written anywhere.
    db = sa.make_url(pg_url).set(password=PASSWORD).render_as_string(hide_password=False)
    port = free_port()
    args = ["watch", "--db", db, "--log-format", "json", "--metrics-port", str(port),
            "--workers", "1", "--allow-private-network", "--error-log",
            str(tmp_path / "errors.log")]
    process = subprocess.Popen([sys.executable, "-m", "pixelgrade", *args], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "COLUMNS": "200"})
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout or []), daemon=True)
    reader.start()
    base = f"http://127.0.0.1:{port}"

    def events(name: str) -> list[dict[str, Any]]:
        return [e for e in map(json.loads, list(lines)) if e["event"] == name]

    try:
        wait_for(lambda: events("watching") or process.poll() is not None,
                 "the watcher to start", timeout=60)
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        health = httpx.get(f"{base}/healthz", timeout=10)
        assert health.status_code == 200, health.text
        assert health.json()["checks"] == {"database": "ok", "watch": "ok"}
        insert(pg_url, 2, [image_server.url("/other.jpg"), image_server.url("/gone.jpg")])
        wait_for(lambda: len(events("scored")) + len(events("failed")) == 3, "three images")

        def scrape() -> dict[Any, float]:
            answer = httpx.get(f"{base}/metrics", timeout=10)
            assert answer.status_code == 200
            return samples(answer.text)

        found = wait_for(lambda: (lambda s: s if value(
            s, "pixelgrade_insert_to_score_seconds_count", path="watch") == 3 else None)(
            scrape()), "the third image in /metrics")
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(timeout=5)
    errors = process.stderr.read() if process.stderr else ""
    assert process.returncode == 0, errors

    rows = tables.rows(pg_url)
    assert images(found) == {("scored", ""): 2, ("failed", "http_404"): 1}
    assert sorted(str(r["quality_status"]) for r in rows.values()) == ["failed", "scored",
                                                                        "scored"]
    assert [r["mode"] for r in map(json.loads, lines) if r["event"] == "watching"] == ["listen"]
    assert ("pixelgrade_queue_depth", frozenset({("path", "watch")})) in found
    assert value(found, "pixelgrade_queue_depth", path="watch") == 0  # both read by now
    assert value(found, "pixelgrade_info", version=_version(), store="postgresql") == 1
    # Logs: every line a JSON object with ts, level, event and message; no password at all.
    records = [json.loads(line) for line in lines]
    assert records and all({"ts", "level", "event", "message"} <= r.keys() for r in records)
    assert {r["level"] for r in records if r["event"] == "failed"} == {"warning"}
    assert [r["event"] for r in records][-1] == "stopped"
    assert any(r["event"] == "metrics" and r["url"] == base for r in records)
    assert PASSWORD not in "".join(lines) + errors
    # The metrics server went with the watch.
    try:
        httpx.get(f"{base}/healthz", timeout=2)
        raise AssertionError("the metrics server is still answering")
    except httpx.TransportError:
        pass


def _version() -> str:
    from pixelgrade import __version__

    return __version__


def test_a_port_in_use_is_said_before_watching(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'library.db'}"
    tables.pixelgrade_table(url, [])
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["watch", "--db", url, "--metrics-port", str(port),
                                          "--once"], env={"COLUMNS": "200"})
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port} for /metrics and /healthz" in " ".join(
        result.output.split())


def test_json_is_the_same_as_log_format_json(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'library.db'}"
    tables.pixelgrade_table(url, [])
    outputs = []
    for flag in (["--json"], ["--log-format", "json"]):
        result = CliRunner().invoke(app, ["watch", "--db", url, "--once", *flag,
                                          "--error-log", str(tmp_path / "e.log")])
        assert result.exit_code == 0, result.output
        outputs.append([{k: v for k, v in json.loads(line).items() if k not in ("ts", "seconds")}
                        for line in result.output.splitlines()])
    assert outputs[0] == outputs[1]
    assert [r["event"] for r in outputs[0]] == ["start", "sweep", "stopped"]
    bad = CliRunner().invoke(app, ["watch", "--db", url, "--once", "--log-format", "xml"])
    assert bad.exit_code == 2 and "'xml' is not a log format: text or json" in bad.output
