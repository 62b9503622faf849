"""A second Ctrl-C abandons the chunks in flight at once, even when their workers are stuck in a
download: the scoring processes are terminated, not waited for."""

from __future__ import annotations

import dataclasses
import io
import os
import signal
import threading
import time
from pathlib import Path

from rich.console import Console

from pixelgrade.backfill import BackfillOptions, EngineOptions, run_backfill
from pixelgrade.backfill.progress import PlainProgress
from pixelgrade.stores import open_store
from tests.backfill.conftest import ImageServer
from tests.backfill.test_backfill import FAST_HTTP
from tests.stores import tables

#: The server holds each response this long; the downloads wait for it (no timeout before).
STUCK_SECONDS = 60.0


def test_second_ctrl_c_does_not_wait_for_stuck_downloads(
        image_server: ImageServer, tmp_path: Path) -> None:
    image_server.delay = STUCK_SECONDS
    db = f"sqlite:///{tmp_path / 'library.db'}"
    ids = tables.pixelgrade_table(db, [image_server.url(f"/delay/{i}.jpg") for i in range(6)])
    patient = dataclasses.replace(FAST_HTTP, read_timeout=STUCK_SECONDS * 2,
                                  total_timeout=STUCK_SECONDS * 2)
    options = BackfillOptions(engine=EngineOptions(batch_size=3), workers=2, concurrency=4,
                              chunk_size=2, checkpoint=tmp_path / "checkpoint.json",
                              error_log=tmp_path / "errors.log", http=patient)

    def press_ctrl_c_twice() -> None:
        while sum(image_server.hits.values()) < 2:  # downloads under way
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGINT)

    presser = threading.Thread(target=press_ctrl_c_twice, daemon=True)
    console = Console(file=io.StringIO(), width=200)
    store = open_store(db)
    started = time.monotonic()
    try:
        presser.start()
        report = run_backfill(store, options, console, PlainProgress(console))
    finally:
        store.close()
    seconds = time.monotonic() - started

    assert seconds < STUCK_SECONDS / 3, seconds
    assert report.interrupted and report.processed == 0
    assert all(row["quality_status"] is None for row in tables.rows(db).values())
    assert len(ids) == 6
