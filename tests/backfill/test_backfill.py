"""The backfill end to end, with real parts only: real SQLite files and PostgreSQL databases
(``db_url`` runs a test on both), a real HTTP server for the images (see conftest.py), real
scoring processes, real signals. Through the library (``run_backfill``, ``dry_run``) and through
the ``pixelgrade`` command (``CliRunner`` in-process, or a subprocess for Ctrl-C).

HTTP timeouts and retries are cut down (:data:`FAST_HTTP`) so failures fail fast; the CLI keeps
its defaults, so CLI tests only use endpoints that answer at once.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from rich.console import Console
from typer.testing import CliRunner

from pixelgrade.backfill import (
    BackfillOptions,
    BackfillReport,
    EngineOptions,
    dry_run,
    run_backfill,
)
from pixelgrade.backfill.progress import PlainProgress, Tally
from pixelgrade.cli import app
from pixelgrade.errors import BackfillLockedError, CheckpointError, StoreError
from pixelgrade.scoring import SCORER_VERSION
from pixelgrade.sources.http import HttpPolicy
from pixelgrade.stores import Selection, SqlStore, open_store
from tests.backfill.conftest import ImageServer, jpeg, png
from tests.stores import tables

runner = CliRunner()

#: Short enough that the slow endpoint fails fast, long enough that a loaded 2-core machine
#: never turns a prompt answer into a timeout (which would add a retry to the hit counts).
#: The image server is on loopback, which the SSRF guard refuses unless told otherwise.
FAST_HTTP = HttpPolicy(connect_timeout=5.0, read_timeout=1.5, total_timeout=10.0, retries=1,
                       backoff_base=0.01, backoff_max=0.02, max_retry_after=5.0, http2=False,
                       allow_private_network=True)
VERIFY_KEYS = {"total_images", "images_with_scores", "images_without_scores",
               "avg_quality_score", "bands", "statuses", "histogram", "warnings"}
#: Wide enough that Rich does not wrap the lines the tests read.
WIDE = {"COLUMNS": "250"}


def _flat(text: str) -> str:
    return " ".join(text.split())


def _options(tmp_path: Path, *, batch_size: int = 4, workers: int = 1, **extra: Any
             ) -> BackfillOptions:
    engine = EngineOptions(batch_size=batch_size, write_backoff=0.05,
                           limit=extra.pop("limit", None))
    return BackfillOptions(engine=engine, workers=workers, concurrency=8,
                           checkpoint=tmp_path / "checkpoint.json",
                           error_log=tmp_path / "errors.log", http=FAST_HTTP, **extra)


def _run(url: str, options: BackfillOptions, progress_class: type[PlainProgress] = PlainProgress
         ) -> tuple[BackfillReport, str]:
    output = io.StringIO()
    console = Console(file=output, width=200, highlight=False)
    store = open_store(url)
    try:
        report = run_backfill(store, options, console, progress_class(console))
    finally:
        store.close()
    return report, output.getvalue()


def _error_log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _cli(*args: str, env: dict[str, str] | None = None) -> Any:
    return runner.invoke(app, list(args), env={**WIDE, **(env or {})})


# -- a full run -----------------------------------------------------------------------------


def _scenario(server: ImageServer, tmp_path: Path) -> list[tuple[str, str, str | None]]:
    """(location, expected outcome, expected error kind) for every kind of row."""
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "local.png").write_bytes(png("chelsea.png"))
    secret_url = server.url("/private/missing.jpg?token=t0psecret").replace(
        "http://", "http://alice:hunter22@")
    return [
        (server.url("/good.jpg"), "scored", None),
        (server.url("/good.png"), "scored", None),
        (server.url("/good.webp"), "scored", None),
        (server.url("/wrong-type.jpg"), "scored", None),
        (server.url("/page.html"), "failed", "decode"),
        (server.url("/missing.jpg"), "failed", "http_404"),
        (server.url("/vector.svg"), "skipped", None),
        # A body cut short is a dropped download: transient by design (sources/http.py).
        (server.url("/truncated.jpg"), "retry", "truncated"),
        (server.url("/error.jpg"), "retry", "http_500"),
        (server.url("/slow.jpg"), "retry", "timeout"),
        (server.url("/busy.jpg"), "scored", None),
        (str(tmp_path / "photos" / "local.png"), "scored", None),  # absolute path
        ("photos/local.png", "scored", None),  # relative to --root
        (str(tmp_path / "photos" / "gone.png"), "failed", "not_found"),
        (secret_url, "failed", "http_404"),
        ("", "failed", "no_location"),
    ]


def test_full_run(db_url: str, image_server: ImageServer, tmp_path: Path) -> None:
    scenario = _scenario(image_server, tmp_path)
    ids = tables.pixelgrade_table(db_url, [location for location, _, _ in scenario])
    tables.count_updates(db_url)
    options = _options(tmp_path, batch_size=4, workers=2, root=tmp_path)

    report, output = _run(db_url, options)

    expected = {i: outcome for i, (_, outcome, _) in zip(ids, scenario, strict=True)}
    n_scored = sum(o == "scored" for o in expected.values())
    n_failed = sum(o == "failed" for o in expected.values())
    n_retry = sum(o == "retry" for o in expected.values())
    assert (report.scored, report.failed, report.retry_later, report.skipped) == (
        n_scored, n_failed, n_retry, 1)
    assert report.processed == len(ids) and report.written == len(ids) - n_retry
    assert report.finished and not report.interrupted
    assert "Batch 4/4 complete" in output and "Progress: 100% complete" in output

    rows = tables.rows(db_url)
    for i, (location, outcome, _) in zip(ids, scenario, strict=True):
        row = rows[i]
        if outcome == "scored":
            assert 0 <= row["quality_score"] <= 100, location
            assert row["quality_status"] == "scored"
            details = row["quality_details"]
            assert details["scorer_version"] == SCORER_VERSION
            assert {"sharpness", "noise", "exposure"} <= set(details["components"])
            assert details["width"] > 100 and details["height"] > 100
            assert row["quality_scored_at"] is not None
        elif outcome in ("failed", "skipped"):
            assert row["quality_score"] is None and row["quality_status"] == outcome, location
            assert row["quality_details"]["reason"]
            assert row["quality_scored_at"] is not None
        else:  # transient: left for a later run, untouched
            assert row["quality_score"] is None and row["quality_status"] is None, location
            assert row["quality_details"] is None and row["quality_scored_at"] is None
    assert rows[ids[0]]["quality_details"]["width"] == 300  # the photo at half size
    assert rows[ids[3]]["quality_details"]["format"] == "JPEG"  # sniffed, not text/html
    assert rows[ids[2]]["quality_details"]["format"] == "WEBP"
    assert rows[ids[5]]["quality_details"]["kind"] == "http_404"
    assert "HTTP 404" in rows[ids[5]]["quality_details"]["reason"]
    assert "SVG" in rows[ids[6]]["quality_details"]["reason"]

    # Every row written at most once; transient rows not at all.
    assert tables.updates(db_url) == {str(i): 1 for i in ids if expected[i] != "retry"}

    log = _error_log(options.error_log)
    by_id = {record["id"]: record for record in log}
    assert len(log) == len(by_id) == n_failed + n_retry
    for i, (_, outcome, kind) in zip(ids, scenario, strict=True):
        if outcome in ("scored", "skipped"):
            assert i not in by_id
            continue
        record = by_id[i]
        assert record["kind"] == kind
        assert record["transient"] is (outcome == "retry")
        assert record["attempt"] == 1 and record["message"]
    secret = by_id[ids[14]]
    assert secret["url"] == image_server.url("/private/missing.jpg?…")
    assert "hunter22" not in options.error_log.read_text()
    assert "t0psecret" not in options.error_log.read_text()

    # Retries: 429 waited for (Retry-After: 1) then scored; 5xx tried retries + 1 times; a
    # permanent failure only once.
    assert image_server.hits["/busy.jpg"] == 2
    assert image_server.hits["/error.jpg"] == FAST_HTTP.retries + 1
    assert image_server.hits["/missing.jpg"] == image_server.hits["/page.html"] == 1

    checkpoint = json.loads(options.checkpoint.read_text())
    assert checkpoint["finished"] is True and checkpoint["cursor"] == ids[-1]
    assert (checkpoint["scored"], checkpoint["failed"], checkpoint["retry_later"]) == (
        n_scored, n_failed, n_retry)


def test_resume_after_a_finished_run_retries_transient_failures(
        db_url: str, image_server: ImageServer, tmp_path: Path) -> None:
    names = ["/good.jpg", "/flaky.jpg", "/missing.jpg", "/good.png"]
    ids = tables.pixelgrade_table(db_url, [image_server.url(n) for n in names])
    tables.count_updates(db_url)
    options = _options(tmp_path, batch_size=2)
    first, _ = _run(db_url, options)
    assert (first.scored, first.failed, first.retry_later) == (2, 1, 1) and first.finished

    image_server.flaky_fails = False
    second, _ = _run(db_url, _options(tmp_path, batch_size=2, resume=True))
    assert second.retried_from_error_log == 1
    assert (second.processed, second.scored, second.failed) == (1, 1, 0)
    assert tables.rows(db_url)[ids[1]]["quality_status"] == "scored"
    assert image_server.hits["/flaky.jpg"] == FAST_HTTP.retries + 1 + 1
    assert image_server.hits["/missing.jpg"] == 1  # permanent failures are not retried
    assert tables.updates(db_url) == {str(ids[0]): 1, str(ids[1]): 1, str(ids[2]): 1,
                                      str(ids[3]): 1}
    # Nothing left: a third resume does nothing at all.
    third, _ = _run(db_url, _options(tmp_path, batch_size=2, resume=True))
    assert third.processed == 0 and third.retried_from_error_log == 0
    assert len(_error_log(options.error_log)) == 2


# -- dry run --------------------------------------------------------------------------------


def test_dry_run_writes_nothing(db_url: str, image_server: ImageServer, tmp_path: Path) -> None:
    locations = [image_server.url(p) for p in ("/good.jpg", "/page.html", "/missing.jpg",
                                               "/good.png", "/other.jpg")]
    tables.pixelgrade_table(db_url, locations)
    with tables.connect(db_url) as conn:  # one row already scored: not counted
        conn.execute(sa.text("UPDATE images SET quality_score = 88 WHERE id = 5"))
    before = tables.checksum(db_url)
    files_before = sorted(os.listdir(tmp_path))
    options = _options(tmp_path)

    store = open_store(db_url)
    try:
        report = dry_run(store, options, sample_size=3)
    finally:
        store.close()
    assert report.todo == 4
    assert [(s["id"], s["status"]) for s in report.sample] == [
        (1, "scored"), (2, "failed"), (3, "failed")]
    assert 0 <= report.sample[0]["score"] <= 100
    assert "HTTP 404" in report.sample[2]["reason"]
    assert report.capabilities == {"status": True, "details": True, "scored_at": True}
    assert report.estimated_seconds is not None

    result = _cli("backfill", "--dry-run", "--json", "--db", db_url, "--workers", "1",
                  "--allow-private-network", "--checkpoint", str(options.checkpoint), "--error-log",
                  str(options.error_log))
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["todo"] == 4 and len(printed["sample"]) == 4
    text = _flat(result.stderr)
    assert "DRY RUN MODE - No database changes will be made" in text
    assert "Found 4 images without quality scores" in text
    assert "Dry run complete - no changes made" in text

    assert tables.checksum(db_url) == before
    assert not options.checkpoint.exists() and not options.error_log.exists()
    assert sorted(os.listdir(tmp_path)) == files_before  # no lock file, no journal, nothing


def test_a_run_the_network_guard_refuses_says_so_and_fails(
        db_url: str, image_server: ImageServer, tmp_path: Path) -> None:
    """Every URL is on loopback and no --allow-host: the dry run ends with a verdict by kind
    naming the flag, and exits 1; the real run groups the failures the same way and exits 1;
    `verify --strict` fails at 100% failed."""
    ids = tables.pixelgrade_table(db_url, [image_server.url(f"/good.jpg?{i}") for i in range(6)])
    common = ["--db", db_url, "--workers", "1", "--checkpoint", str(tmp_path / "c.json"),
              "--error-log", str(tmp_path / "e.log")]

    dry = _cli("backfill", "--dry-run", *common)
    assert dry.exit_code == 1, dry.output
    text = _flat(dry.output)
    assert "6 of 6 sample rows would fail:" in text
    assert "6 forbidden_address (127.0.0.1): pass --allow-host 127.0.0.1" in text
    assert "the run would score nothing as configured" in text
    assert "estimated duration" not in text

    real = _cli("backfill", *common)
    assert real.exit_code == 1, real.output
    text = _flat(real.output)
    assert "0 scored, 0 skipped, 6 failed" in text
    assert "Failures by kind, with the first fix to try: 6 forbidden_address (127.0.0.1): " \
        "pass --allow-host 127.0.0.1" in text
    assert "Nothing was scored" in text
    assert [row["quality_status"] for row in tables.rows(db_url).values()] == ["failed"] * 6
    assert image_server.hits.get("/good.jpg", 0) == 0  # nothing was fetched

    strict = _cli("verify", "--db", db_url, "--strict")
    assert strict.exit_code == 1
    assert "100.0% of rows failed" in _flat(strict.output)

    fixed = _cli("backfill", *common, "--retry-failed", "--allow-host", "127.0.0.1")
    assert fixed.exit_code == 0, fixed.output
    assert f"Check the result with: pixelgrade verify --db {db_url}" in _flat(fixed.output)
    rates = re.findall(r"([\d.]+) images/s", fixed.output)
    assert len(rates) == 2 and rates[0] == rates[1], fixed.output  # progress and summary agree
    assert len(ids) == 6


def test_the_output_uses_one_vocabulary(db_url: str, image_server: ImageServer,
                                        tmp_path: Path) -> None:
    """A transient failure is "to retry" in the batch line as in the summary; the store is
    named as typed (postgresql://, not the driver's postgresql+psycopg://); verify says n/a,
    not None, for the average of no scores."""
    tables.pixelgrade_table(db_url, [image_server.url("/flaky.jpg")])
    typed = db_url.replace("postgresql+psycopg://", "postgresql://")  # as a person types it
    result = _cli("backfill", "--db", typed, "--workers", "1", "--allow-host", "127.0.0.1",
                  "--checkpoint", str(tmp_path / "c.json"), "--error-log", str(tmp_path / "e.log"))
    text = _flat(result.output)
    assert "Batch 1/1 complete: 0 succeeded, 0 failed, 1 to retry" in text, text
    assert "0 scored, 0 skipped, 0 failed, 1 to retry" in text
    assert "+psycopg" not in text
    if typed.startswith("postgresql"):
        assert f"PostgreSQL database {typed}" in text
    verified = _cli("verify", "--db", typed)
    assert "avg_quality_score n/a (no scores yet)" in _flat(verified.output)
    assert "None" not in verified.output


# -- interrupt and resume -------------------------------------------------------------------


class _CtrlCAfterFirstBatch(PlainProgress):
    """Progress that presses Ctrl-C (a real SIGINT to this process) once batch 1 is committed."""

    def batch(self, tally: Tally, index: int, succeeded: int, failed: int,
              retry: int = 0) -> None:
        super().batch(tally, index, succeeded, failed, retry)
        if index == 1:
            os.kill(os.getpid(), signal.SIGINT)


def test_sigint_then_resume_scores_every_row_exactly_once(
        db_url: str, image_server: ImageServer, tmp_path: Path) -> None:
    names = ["/flaky.jpg", "/good.jpg", "/good.png", "/good.webp", "/other.jpg",
             "/wrong-type.jpg", "/good.jpg", "/good.png", "/other.jpg", "/good.webp",
             "/missing.jpg", "/good.jpg"]
    ids = tables.pixelgrade_table(db_url, [image_server.url(n) for n in names])
    tables.count_updates(db_url)
    options = _options(tmp_path, batch_size=2)

    first, output = _run(db_url, options, _CtrlCAfterFirstBatch)
    assert first.interrupted and not first.finished
    assert "SIGINT: finishing the images already started" in output
    # The batches in flight were finished and committed; the rest was not started.
    assert 2 <= first.processed < len(ids) and first.processed % 2 == 0
    checkpoint = json.loads(options.checkpoint.read_text())
    assert checkpoint["cursor"] == ids[first.processed - 1] and not checkpoint["finished"]
    done = {str(i) for i in ids[1:first.processed]}
    assert tables.updates(db_url) == dict.fromkeys(done, 1)
    assert [r["id"] for r in _error_log(options.error_log)] == [ids[0]]

    image_server.flaky_fails = False
    second, _ = _run(db_url, _options(tmp_path, batch_size=2, resume=True))
    assert second.finished and not second.interrupted
    assert second.resumed_from == ids[first.processed - 1]
    assert second.retried_from_error_log == 1
    assert second.processed == len(ids) - first.processed + 1

    rows = tables.rows(db_url)
    assert [rows[i]["quality_status"] for i in ids] == ["scored"] * 10 + ["failed", "scored"]
    assert tables.updates(db_url) == {str(i): 1 for i in ids}  # exactly once each
    assert image_server.hits["/flaky.jpg"] == FAST_HTTP.retries + 1 + 1
    log = _error_log(options.error_log)
    assert [(r["id"], r["kind"], r["transient"]) for r in log] == [
        (ids[0], "http_500", True), (ids[10], "http_404", False)]
    final = json.loads(options.checkpoint.read_text())
    assert final["finished"] is True and final["cursor"] == ids[-1]
    assert final["started_at"] == checkpoint["started_at"]


def test_sigint_stops_rows_waiting_for_their_rate_slot(db_url: str, tmp_path: Path) -> None:
    """With --rate, every row of a small table is in flight at once (one batch), paced by the
    limiter: a stop request must leave the rows still waiting, not score them all and call it
    a stop. The rows that ran are committed, the checkpoint names the last of them, and a
    resume scores the rest, each row exactly once."""
    (tmp_path / "a.jpg").write_bytes(jpeg())
    ids = tables.pixelgrade_table(db_url, [str(tmp_path / "a.jpg")] * 12)
    tables.count_updates(db_url)
    engine = EngineOptions(batch_size=100, rate=5.0, write_backoff=0.05)
    options = _options(tmp_path, root=tmp_path)
    options = dataclasses.replace(options, engine=engine)
    timer = threading.Timer(0.9, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        first, output = _run(db_url, options)
    finally:
        timer.cancel()
    assert first.interrupted and not first.finished, output
    assert 1 <= first.processed <= 8, first  # 12 rows at 5/s take 2.2 s; stopped after ~1 s
    checkpoint = json.loads(options.checkpoint.read_text())
    assert checkpoint["cursor"] == ids[first.processed - 1] and not checkpoint["finished"]
    assert tables.updates(db_url) == {str(i): 1 for i in ids[:first.processed]}

    second, _ = _run(db_url, dataclasses.replace(options, resume=True,
                                                  engine=EngineOptions(batch_size=100)))
    assert second.finished and second.processed == len(ids) - first.processed
    assert tables.updates(db_url) == {str(i): 1 for i in ids}


def test_resume_without_a_checkpoint_retries_each_row_once(
        db_url: str, image_server: ImageServer, tmp_path: Path) -> None:
    """The error log names a transient row that the scan from the start also finds: it must
    be fetched and logged once, not twice."""
    names = ["/good.jpg", "/flaky.jpg", "/good.png"]
    ids = tables.pixelgrade_table(db_url, [image_server.url(n) for n in names])
    options = _options(tmp_path, batch_size=2)
    first, _ = _run(db_url, options)
    assert first.retry_later == 1
    options.checkpoint.unlink()

    hits = image_server.hits["/flaky.jpg"]
    second, output = _run(db_url, _options(tmp_path, batch_size=2, resume=True))
    assert "No checkpoint at" in output
    assert second.processed == 1 and second.retry_later == 1
    assert second.not_written_already_done == 0
    assert image_server.hits["/flaky.jpg"] - hits == FAST_HTTP.retries + 1
    log = _error_log(options.error_log)
    assert [(r["id"], r["attempt"]) for r in log] == [(ids[1], 1), (ids[1], 2)]


def test_ctrl_c_on_the_cli_then_resume(db_url: str, image_server: ImageServer,
                                       tmp_path: Path) -> None:
    """The real thing: ``pixelgrade backfill`` in a subprocess, SIGINT once the first batch is
    committed, exit code 130 and the --resume hint, then ``--resume`` finishes the job."""
    image_server.delay = 0.3
    ids = tables.pixelgrade_table(db_url, [image_server.url(f"/delay/{i}.jpg")
                                           for i in range(12)])
    tables.count_updates(db_url)
    checkpoint, error_log = tmp_path / "checkpoint.json", tmp_path / "errors.log"
    args = ["backfill", "--db", db_url, "--batch-size", "2", "--workers", "1",
            "--allow-host", "127.0.0.1", "--checkpoint", str(checkpoint),
            "--error-log", str(error_log)]
    process = subprocess.Popen([sys.executable, "-m", "pixelgrade", *args], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, **WIDE})
    try:
        deadline = time.monotonic() + 60
        while not checkpoint.exists():
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, "no checkpoint after 60 s"
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, output
    text = _flat(output)
    assert "SIGINT: finishing the images already started" in text
    assert f"Interrupted. Checkpoint saved in {checkpoint}" in text
    hint = re.search(r"continue with: (pixelgrade backfill --resume.*)", output)
    assert hint is not None, output
    assert hint.group(1).strip() == f"pixelgrade backfill --resume --checkpoint {checkpoint}"

    saved = json.loads(checkpoint.read_text())
    assert not saved["finished"] and saved["processed"] < len(ids)
    committed = {str(i) for i in ids[:saved["processed"]]}
    assert tables.updates(db_url) == dict.fromkeys(committed, 1)
    assert saved["cursor"] == ids[saved["processed"] - 1]
    assert saved["settings"]["allow_host"] == ["127.0.0.1"]

    # The hint, run literally from the same folder: the store, the table and --allow-host
    # come from the checkpoint (run without them, rows would be refused and marked failed).
    environment = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    resumed = subprocess.run(
        [sys.executable, "-m", "pixelgrade", *shlex.split(hint.group(1))[1:]], cwd=tmp_path,
        capture_output=True, text=True, env={**environment, **WIDE}, timeout=120)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    text = _flat(resumed.stdout)
    assert "Resuming with the settings of the run in" in text
    assert "--db" in text and "--allow-host" in text and "0 failed" in text
    assert "Check the result with: pixelgrade verify --db" in text
    assert tables.updates(db_url) == {str(i): 1 for i in ids}
    assert json.loads(checkpoint.read_text())["finished"] is True
    assert sum(image_server.hits.values()) == len(ids)  # no image fetched twice
    assert not error_log.exists()


def test_checkpoint_of_another_database_is_refused(db_url: str, tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(png())
    other = f"sqlite:///{tmp_path / 'other.db'}"
    tables.pixelgrade_table(other, [str(tmp_path / "a.png")] * 4)
    tables.pixelgrade_table(db_url, [str(tmp_path / "a.png")] * 4)
    checkpoint = tmp_path / "checkpoint.json"
    common = ["--batch-size", "1", "--workers", "1", "--checkpoint", str(checkpoint),
              "--error-log", str(tmp_path / "errors.log")]
    result = _cli("backfill", "--db", other, "--limit", "2", *common)
    assert result.exit_code == 0, result.output
    assert json.loads(checkpoint.read_text())["cursor"] == 2
    before = tables.checksum(db_url)

    result = _cli("backfill", "--db", db_url, "--resume", *common)
    assert result.exit_code == 1, result.output
    message = _flat(result.output)
    assert f"checkpoint {checkpoint} belongs to sqlite:" in message
    assert "other.db#images.quality_score" in message
    assert "delete it to start over" in message
    assert tables.checksum(db_url) == before

    result = _cli("backfill", "--db", other, "--resume", "--retry-failed", *common)
    assert result.exit_code == 1, result.output
    assert "was written by a run with other options" in _flat(result.output)

    store = open_store(db_url)
    try:
        with pytest.raises(CheckpointError, match="belongs to"):
            run_backfill(store, _options(tmp_path, resume=True), Console(file=io.StringIO()),
                         PlainProgress(Console(file=io.StringIO())))
    finally:
        store.close()
    assert tables.checksum(db_url) == before


def test_concurrent_backfill_on_the_same_table_is_refused(db_url: str, tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(png())
    tables.pixelgrade_table(db_url, [str(tmp_path / "a.png")])
    before = tables.checksum(db_url)
    running = open_store(db_url)
    try:
        with running.lock():  # a backfill in progress, from another connection
            result = _cli("backfill", "--db", db_url, "--workers", "1",
                          "--checkpoint", str(tmp_path / "c.json"))
            assert result.exit_code == 1, result.output
            assert "another backfill is running on table images" in _flat(result.output)
            store = open_store(db_url)
            try:
                with pytest.raises(BackfillLockedError):
                    run_backfill(store, _options(tmp_path), Console(file=io.StringIO()),
                                 PlainProgress(Console(file=io.StringIO())))
            finally:
                store.close()
        assert tables.checksum(db_url) == before
        assert not (tmp_path / "c.json").exists()
        result = _cli("backfill", "--db", db_url, "--workers", "1", "--root", str(tmp_path),
                      "--checkpoint", str(tmp_path / "c.json"))
        assert result.exit_code == 0, result.output  # free again
        assert "1 scored" in _flat(result.output)
    finally:
        running.close()


def test_resume_on_a_uuid_table(db_url: str, image_server: ImageServer,
                                tmp_path: Path) -> None:
    """UUID keys go through the checkpoint (as text) and the error log and come back."""
    ids = tables.bare_table(db_url, [image_server.url("/good.jpg")] * 6, uuid_ids=True)
    with tables.connect(db_url) as conn:  # the first row in key order fails for now
        conn.execute(sa.text("UPDATE images SET url = :u WHERE id = :i"),
                     {"u": image_server.url("/flaky.jpg"), "i": ids[0]})
    SqlStore(db_url, inspect=False).migrate()
    tables.count_updates(db_url)
    options = _options(tmp_path, batch_size=2, limit=4)
    first, _ = _run(db_url, options)
    assert (first.processed, first.retry_later, first.finished) == (4, 1, False)
    saved = json.loads(options.checkpoint.read_text())
    assert saved["cursor"] == str(ids[3])
    assert _error_log(options.error_log)[0]["id"] == str(ids[0])

    image_server.flaky_fails = False
    second, _ = _run(db_url, _options(tmp_path, batch_size=2, resume=True))
    assert str(second.resumed_from) == str(ids[3]) and second.retried_from_error_log == 1
    assert (second.processed, second.scored, second.finished) == (3, 3, True)
    assert second.to_dict()["resumed_from"] == str(ids[3])
    assert tables.updates(db_url) == {str(i): 1 for i in ids}
    assert json.loads(options.checkpoint.read_text())["cursor"] == str(ids[-1])


def test_failed_write_stops_the_run_at_the_last_committed_batch(
        db_url: str, tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(jpeg())
    ids = tables.pixelgrade_table(db_url, [str(tmp_path / "a.jpg")] * 8)
    tables.count_updates(db_url)
    with tables.connect(db_url) as conn:  # the database refuses to update row 5
        if tables.is_postgres(db_url):
            conn.exec_driver_sql(
                "CREATE FUNCTION refuse_five() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "IF NEW.id = 5 THEN RAISE EXCEPTION 'disk full (test)'; END IF; RETURN NEW; "
                "END $$")
            conn.exec_driver_sql("CREATE TRIGGER refuse BEFORE UPDATE ON images FOR EACH ROW "
                                 "EXECUTE FUNCTION refuse_five()")
        else:
            conn.exec_driver_sql("CREATE TRIGGER refuse BEFORE UPDATE ON images WHEN "
                                 "NEW.id = 5 BEGIN SELECT RAISE(ABORT, 'disk full (test)'); END")
    options = _options(tmp_path, batch_size=2)
    with pytest.raises(StoreError, match=r"writing 2 scores to .* failed: .*disk full \(test\)"):
        _run(db_url, options)
    saved = json.loads(options.checkpoint.read_text())
    assert saved["cursor"] == 4 and not saved["finished"]  # batches 1-2 only, as committed
    assert tables.updates(db_url) == {str(i): 1 for i in ids[:4]}  # batch 3 rolled back whole

    with tables.connect(db_url) as conn:
        conn.exec_driver_sql("DROP TRIGGER refuse" + (" ON images" if tables.is_postgres(
            db_url) else ""))
    report, _ = _run(db_url, _options(tmp_path, batch_size=2, resume=True))
    assert report.finished and report.processed == 4 and report.resumed_from == 4
    assert tables.updates(db_url) == {str(i): 1 for i in ids}


def test_rescore_version_through_the_cli(db_url: str, tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(jpeg())
    ids = tables.pixelgrade_table(db_url, ["a.jpg"] * 4)
    with tables.connect(db_url) as conn:
        for i, version in ((1, "0"), (2, SCORER_VERSION)):
            conn.execute(sa.text("UPDATE images SET quality_score = 3, quality_status = "
                                 "'scored', quality_details = :d WHERE id = :i"),
                         {"d": json.dumps({"scorer_version": version}), "i": i})
        conn.execute(sa.text("UPDATE images SET quality_score = 4 WHERE id = 3"))  # by the app
    common = ["--db", db_url, "--workers", "1", "--root", str(tmp_path),
              "--checkpoint", str(tmp_path / "c.json"), "--error-log", str(tmp_path / "e.log")]
    result = _cli("backfill", "--rescore-version", *common)
    assert result.exit_code == 0, result.output
    assert "rows scored by a scorer version other than" in _flat(result.output)
    rows = tables.rows(db_url)
    assert rows[ids[0]]["quality_score"] != 3
    assert rows[ids[0]]["quality_details"]["scorer_version"] == SCORER_VERSION
    assert [rows[i]["quality_score"] for i in ids[1:3]] == [3, 4]
    assert rows[ids[3]]["quality_score"] == rows[ids[0]]["quality_score"]
    again = _cli("backfill", "--rescore-version", *common)
    assert again.exit_code == 0 and "Nothing to do" in _flat(again.output)


#: quality_details as pixelgrade 0.1.0 (scorer version 1) wrote them for a blurred photo.
V1_DETAILS = {
    "components": {
        "sharpness": {"score": 38, "value": 6.5, "unit": "px edge width", "weight": 1.0},
        "noise": {"score": 100, "value": 0.0, "unit": "noise sigma (grey levels)",
                  "weight": 0.8},
        "information": {"score": 100, "value": 7.1, "unit": "histogram entropy (bits)",
                        "weight": 1.5},
    },
    "issues": [{"code": "blurry",
                "message": "blurry: edges are spread over ~6 px (crisp photos: 2-3 px)"}],
    "width": 600, "height": 400, "format": "JPEG", "bytes": 41234, "scorer_version": "1",
}


def test_rows_scored_by_scorer_version_1_move_to_version_2(db_url: str,
                                                           tmp_path: Path) -> None:
    """What a user upgrading from pixelgrade 0.1.0 does: verify shows the old rows, backfill
    --rescore-version scores them again, and a score written by the app is left alone."""
    (tmp_path / "a.jpg").write_bytes(jpeg())
    ids = tables.pixelgrade_table(db_url, ["a.jpg"] * 4)
    with tables.connect(db_url) as conn:
        for i in ids[:3]:
            conn.execute(sa.text("UPDATE images SET quality_score = 27, quality_status = "
                                 "'scored', quality_details = :d WHERE id = :i"),
                         {"d": json.dumps(V1_DETAILS), "i": i})
        conn.execute(sa.text("UPDATE images SET quality_score = 55 WHERE id = :i"),
                     {"i": ids[3]})  # written by the app: no details, no version
    before = _cli("verify", "--db", db_url, "--json")
    figures = json.loads(before.output)
    assert figures["scorer_versions"] == {"1": 3}
    assert any("--rescore-version" in w and "3 by scorer version 1" in w
               for w in figures["warnings"])
    text = _cli("verify", "--db", db_url).output
    assert "scorer versions: version 1 3" in _flat(text)

    common = ["--db", db_url, "--workers", "1", "--root", str(tmp_path),
              "--checkpoint", str(tmp_path / "c.json"), "--error-log", str(tmp_path / "e.log")]
    result = _cli("backfill", "--rescore-version", *common)
    assert result.exit_code == 0, result.output
    rows = tables.rows(db_url)
    for i in ids[:3]:
        details = rows[i]["quality_details"]
        assert details["scorer_version"] == SCORER_VERSION
        assert "information" not in details["components"]
        assert {"summary", "formula"} <= set(details)
        assert rows[i]["quality_score"] != 27
    assert rows[ids[3]]["quality_score"] == 55
    after = json.loads(_cli("verify", "--db", db_url, "--json").output)
    assert after["scorer_versions"] == {SCORER_VERSION: 3}
    assert not any("--rescore-version" in w for w in after["warnings"])


def test_url_template_turns_stored_paths_into_urls(db_url: str, image_server: ImageServer,
                                                   tmp_path: Path) -> None:
    ids = tables.pixelgrade_table(db_url, ["good.jpg", "/good.png", image_server.url(
        "/other.jpg")])
    options = _options(tmp_path, url_template=image_server.url("/{path}"))
    report, _ = _run(db_url, options)
    assert report.scored == 3
    assert [tables.rows(db_url)[i]["quality_details"]["format"] for i in ids] == [
        "JPEG", "PNG", "JPEG"]
    assert image_server.hits["/good.jpg"] == image_server.hits["/good.png"] == 1


# -- retry-failed and verify ----------------------------------------------------------------


def test_retry_failed_and_verify(db_url: str, image_server: ImageServer, tmp_path: Path) -> None:
    names = ["/good.jpg", "/gone.jpg", "/page.html", "/other.jpg"]
    ids = tables.pixelgrade_table(db_url, [image_server.url(n) for n in names])
    tables.count_updates(db_url)
    common = ["--db", db_url, "--workers", "1", "--batch-size", "2", "--allow-private-network",
              "--checkpoint", str(tmp_path / "c.json"), "--error-log", str(tmp_path / "e.log")]

    result = _cli("verify", "--db", db_url, "--strict")
    assert result.exit_code == 1, result.output
    assert "4 rows still have no score" in _flat(result.output)

    result = _cli("backfill", *common)
    assert result.exit_code == 0, result.output
    assert "2 scored, 0 skipped, 2 failed, 0 to retry" in _flat(result.output)

    result = _cli("verify", "--db", db_url, "--strict")
    assert result.exit_code == 1, result.output  # nothing pending, but half of it failed
    assert "verify --strict failed: 50.0% of rows failed, more than --max-failed-share 5%" \
        in _flat(result.output)
    result = _cli("verify", "--db", db_url, "--strict", "--max-failed-share", "0.5")
    assert result.exit_code == 0, result.output  # failed rows are settled, not pending
    result = _cli("verify", "--db", db_url, "--json")
    figures = json.loads(result.stdout)
    assert set(figures) >= VERIFY_KEYS
    assert (figures["total_images"], figures["images_with_scores"],
            figures["images_without_scores"]) == (4, 2, 2)
    assert figures["statuses"] == {"scored": 2, "failed": 2}
    assert sum(figures["bands"][b] for b in ("high", "medium", "low")) == 2
    assert sum(figures["histogram"].values()) == 2 and "90-100" in figures["histogram"]
    assert 0 <= figures["avg_quality_score"] <= 100
    assert any("2 of 4 rows (50.0%) failed" in w and "--retry-failed" in w
               for w in figures["warnings"])

    image_server.overrides["/gone.jpg"] = (jpeg("coins.png"), "image/jpeg")  # fixed
    result = _cli("backfill", *common)  # without --retry-failed: nothing to do
    assert result.exit_code == 0, result.output
    assert "Nothing to do" in _flat(result.output)
    result = _cli("backfill", *common, "--retry-failed")
    assert result.exit_code == 0, result.output
    assert "1 scored, 0 skipped, 1 failed" in _flat(result.output)
    rows = tables.rows(db_url)
    assert rows[ids[1]]["quality_status"] == "scored" and rows[ids[1]]["quality_score"] >= 0
    assert rows[ids[2]]["quality_status"] == "failed"
    assert tables.updates(db_url) == {str(ids[0]): 1, str(ids[1]): 2, str(ids[2]): 2,
                                      str(ids[3]): 1}

    result = _cli("verify", "--db", db_url)
    assert result.exit_code == 0, result.output
    text = _flat(result.output)
    assert "total_images 4" in text and "images_with_scores 3" in text
    assert "status: failed 1, scored 3" in text


def test_verify_strict_waits_for_transient_rows(db_url: str, image_server: ImageServer,
                                                tmp_path: Path) -> None:
    ids = tables.pixelgrade_table(db_url, [image_server.url("/good.jpg"),
                                           image_server.url("/flaky.jpg")])
    _run(db_url, _options(tmp_path))
    result = _cli("verify", "--db", db_url, "--strict", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["statuses"] == {"scored": 1, "pending": 1}
    image_server.flaky_fails = False
    _run(db_url, _options(tmp_path, resume=True))
    result = _cli("verify", "--db", db_url, "--strict", "--json")
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["complete"] is True and figures["warnings"] == []
    assert tables.rows(db_url)[ids[1]]["quality_score"] is not None


def test_verify_warns_when_every_score_is_the_same(db_url: str, tmp_path: Path) -> None:
    (tmp_path / "same.jpg").write_bytes(jpeg())
    tables.pixelgrade_table(db_url, ["same.jpg"] * 3)  # relative: found under --root
    result = _cli("backfill", "--db", db_url, "--workers", "1", "--root", str(tmp_path),
                  "--checkpoint", str(tmp_path / "c.json"))
    assert result.exit_code == 0, result.output
    result = _cli("verify", "--db", db_url, "--json")
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    score = figures["max_quality_score"]
    assert figures["min_quality_score"] == score and figures["avg_quality_score"] == score
    assert any(w.startswith(f"every score is {score}:") for w in figures["warnings"])
    human = _cli("verify", "--db", db_url)
    assert f"warning: every score is {score}" in _flat(human.output)


# -- secrets --------------------------------------------------------------------------------


def test_database_password_never_shown(pg_url: str, image_server: ImageServer,
                                       tmp_path: Path) -> None:
    password = "s3cretpw"
    url = sa.make_url(pg_url).set(drivername="postgresql", password=password)
    db = url.render_as_string(hide_password=False)
    assert password in db
    tables.pixelgrade_table(pg_url, [image_server.url(n) for n in
                                     ("/good.jpg", "/missing.jpg", "/page.html")])
    elsewhere = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    tables.pixelgrade_table(elsewhere, ["a.jpg"])
    checkpoint, error_log = tmp_path / "c.json", tmp_path / "e.log"
    common = ["--workers", "1", "--checkpoint", str(checkpoint), "--error-log", str(error_log),
              "--allow-private-network"]
    outputs = []

    def cli(*args: str, env: dict[str, str] | None = None, code: int | None = 0) -> None:
        result = _cli(*args, env=env)
        outputs.append(result.output)
        if code is not None:
            assert result.exit_code == code, result.output

    cli("migrate", "--db", db)
    cli("backfill", "--db", db, "--dry-run", "--json", *common)
    cli("backfill", "--db", db, "--verbose", "--json", *common)
    cli("backfill", "--verbose", *common, env={"DATABASE_URL": db})
    cli("backfill", "--db", db, "--resume", "--json", *common)
    cli("verify", "--db", db)
    cli("verify", "--db", db, "--json")
    cli("backfill", "--db", db, "--table", "nope", *common, code=1)
    cli("backfill", "--db", db, "--url-column", "nope", *common, code=1)
    cli("backfill", "--db", db.replace(url.database or "", "no_such_database"), *common,
        code=1)
    cli("backfill", "--db", db.replace(":5432/", ":1/"), *common, code=1)
    cli("verify", "--db", f"sqlite:///{tmp_path / 'x.db'}", code=1)
    cli("backfill", "--db", elsewhere, "--resume", *common, code=1)  # checkpoint of the PG db
    store = SqlStore(db)
    try:
        with store.lock():
            cli("backfill", "--db", db, *common, code=1)
        assert password not in store.describe() and password not in store.identity()
    finally:
        store.close()

    everything = "\n".join(outputs) + checkpoint.read_text() + error_log.read_text()
    assert "***" in everything  # the URL is shown, masked
    assert password not in re.sub(r"\s", "", everything)
    assert "sqlite:" in everything and "belongs to" in everything


def test_score_only_table_through_the_cli(db_url: str, image_server: ImageServer,
                                          tmp_path: Path) -> None:
    """A table with just ``quality_score``: scores land, failures are only in the error log."""
    ids = tables.bare_table(db_url, [image_server.url("/good.jpg"),
                                     image_server.url("/missing.jpg")])
    common = ["--db", db_url, "--workers", "1", "--checkpoint", str(tmp_path / "c.json"),
              "--error-log", str(tmp_path / "e.log"), "--allow-private-network"]
    result = _cli("backfill", "--dry-run", *common)
    assert result.exit_code == 0, result.output
    assert "failures cannot be recorded" in _flat(result.output)
    result = _cli("backfill", *common)
    assert result.exit_code == 0, result.output
    rows = tables.rows(db_url)
    assert rows[ids[0]]["quality_score"] is not None and rows[ids[1]]["quality_score"] is None
    assert [r["kind"] for r in _error_log(tmp_path / "e.log")] == ["http_404"]
    store = open_store(db_url)
    try:
        assert store.count_todo(Selection()) == 1  # picked again next time
    finally:
        store.close()
