"""Issue 7, part 7: a backfill, ``watch`` and the application write scores to the same rows at
the same time, and every row keeps the first score written to it.

On SQLite and PostgreSQL (``db_url``): ``pixelgrade backfill`` runs as a subprocess over a table
of ``sized(1000, 10000)`` rows while, in this process, a :class:`~pixelgrade.watch.Watcher`
(its start-up sweep covers the same rows) and an application thread work on them too. The
application writes sentinel scores to every 7th row with the same guarded write
(``store.write``: only while the row has no score) and adds new rows (``insert_image``, as an
upload does) for the backfill or ``watch`` to score. Sentinel values are never a photo's score,
so whoever wrote a row can be told from its score.

Checked: a trigger saw exactly one UPDATE per row (nobody overwrote anybody); rows the app wrote
hold their sentinel, the others their photo's score; the three writers' written counts add up
to the table; each of the backfill and ``watch`` either wrote or counted as "already done"
every row it processed; no writer failed ("database is locked" on SQLite: each waits its turn
within the busy timeout).
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

from pixelgrade.stores import Outcome, Selection, open_store
from pixelgrade.watch import Watcher, WatchLog
from tests.reliability.db_backfill import RUN_TIMEOUT, Backfills, kill
from tests.reliability.db_library import PHOTOS, audit, make_library, reference_score
from tests.reliability.report import record, sized
from tests.stores import tables
from tests.watch.conftest import EventStream, wait_for
from tests.watch.conftest import options as watch_options

SENTINEL_EVERY = 7
NEW_ROWS = 40


def _sentinels(count: int) -> list[int]:
    """Scores no photo of the library gets, so a sentinel is told from a real score."""
    real = {reference_score(name) for name in PHOTOS}
    values = [v for v in range(1, 101) if v not in real]
    return [values[i % len(values)] for i in range(count)]


def test_backfill_watch_and_app_write_the_same_rows(db_url: str, tmp_path: Path) -> None:
    rows = sized(1000, 10000)
    backend = "postgresql" if tables.is_postgres(db_url) else "sqlite"
    library = make_library(db_url, tmp_path / "library", rows)
    library.heal()
    chosen = [n for n in library.expected if n % SENTINEL_EVERY == 0]
    random.Random(rows).shuffle(chosen)
    sentinel = dict(zip(chosen, _sentinels(len(chosen)), strict=True))
    app_store = open_store(db_url)
    app_written: dict[int, int] = {}
    new_ids: list[int] = []
    app_errors: list[BaseException] = []
    go = threading.Event()

    def app() -> None:
        try:
            go.wait(RUN_TIMEOUT)
            for index, number in enumerate(chosen):
                outcome = Outcome(number, "scored", sentinel[number], {"by": "app"})
                if app_store.write(Selection(), [outcome]):
                    app_written[number] = sentinel[number]
                if index % (len(chosen) // NEW_ROWS or 1) == 0 and len(new_ids) < NEW_ROWS:
                    photo = PHOTOS[len(new_ids) % len(PHOTOS)]
                    new_ids.append(app_store.insert_image(f"photos/{photo}"))
                time.sleep(0.002)
        except BaseException as exc:
            app_errors.append(exc)

    started = time.monotonic()
    runs = Backfills(db_url, library, tmp_path / "work", workers=1)
    watch_store = open_store(db_url)
    watcher = Watcher(watch_store, watch_options(tmp_path, root=library.root, workers=1,
                                                 batch_size=50),
                      WatchLog(EventStream(), as_json=True))
    watch_errors: list[BaseException] = []

    def watch() -> None:
        go.wait(RUN_TIMEOUT)
        try:
            watcher.run(install_signal_handlers=False)
        except BaseException as exc:
            watch_errors.append(exc)

    threads = [threading.Thread(target=app, name="app", daemon=True),
               threading.Thread(target=watch, name="watch", daemon=True)]
    for thread in threads:
        thread.start()
    process = runs.start(resume=False)
    try:
        # The backfill starts alone (start-up takes it a second or two); once it writes, the
        # watcher's sweep and the application join in.
        wait_for(lambda: tables.updates(db_url) or process.poll() is not None,
                 "the first writes", timeout=RUN_TIMEOUT)
        go.set()
        code = process.wait(timeout=RUN_TIMEOUT)
        threads[0].join(timeout=RUN_TIMEOUT)
        assert code == 0, runs.output()
        assert not app_errors, app_errors
        for number, name in zip(new_ids, [PHOTOS[i % len(PHOTOS)] for i in
                                          range(len(new_ids))], strict=True):
            library.expected[number] = ("scored", name)
        wait_for(lambda: len(tables.updates(db_url)) == len(library.expected),
                 "every row to be written by someone")
    finally:
        go.set()
        kill(process)
        watcher.stop()
        threads[1].join(timeout=30)
        app_store.close()
        watch_store.close()
    assert not watch_errors, watch_errors
    report = runs.report()
    assert report is not None, runs.output()
    watched = watcher.report
    result = audit(db_url, library, others=app_written)
    seconds = time.monotonic() - started
    total = len(library.expected)
    writes = report["written"] + watched.written + len(app_written)
    record("concurrency", backend=backend, rows=total, backfill_written=report["written"],
           backfill_already_done=report["not_written_already_done"],
           watch_written=watched.written, watch_already_done=watched.not_written_already_done,
           app_written=len(app_written), app_refused=len(chosen) - len(app_written),
           new_rows=len(new_ids), overwritten=len(result.overwritten),
           lost=len(result.lost), wrong=len(result.wrong), watch_errors=watched.errors,
           seconds=round(seconds, 1))
    print(f"{backend}: backfill wrote {report['written']} (already done "
          f"{report['not_written_already_done']}), watch {watched.written} (already done "
          f"{watched.not_written_already_done}), app {len(app_written)} of {len(chosen)}, "
          f"{len(new_ids)} new rows, {seconds:.1f} s")
    assert not result.overwritten, f"rows written twice: {result.overwritten[:20]}"
    assert not result.lost, f"rows never scored: {result.lost[:20]}"
    assert not result.wrong, f"rows not as first written: {result.wrong[:20]}"
    assert result.updates == {n: 1 for n in library.expected}
    assert writes == total, (report, watched)
    assert report["processed"] == report["written"] + report["not_written_already_done"]
    assert watched.processed == watched.written + watched.not_written_already_done
    assert watched.errors == 0
    assert len(new_ids) == NEW_ROWS
