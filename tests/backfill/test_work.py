"""``score_chunk``, what a worker runs: every kind of location in one chunk, results in order,
downloads overlapping (run here, in the test process, as a worker would run it)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from pixelgrade.backfill.work import WorkSettings, _fetcher_for, score_chunk
from pixelgrade.scoring import ScoringConfig
from tests.backfill.conftest import ImageServer, jpeg
from tests.backfill.test_backfill import FAST_HTTP

DELAY = 0.6


def test_a_chunk_of_every_kind_of_location(image_server: ImageServer, tmp_path: Path) -> None:
    (tmp_path / "local.jpg").write_bytes(jpeg())
    image_server.delay = DELAY
    slow = [image_server.url(f"/delay/{i}.jpg") for i in range(6)]
    locations = [*slow, str(tmp_path / "local.jpg"), str(tmp_path / "gone.jpg"),
                 image_server.url("/missing.jpg"), image_server.url("/page.html")]
    settings = WorkSettings(http=FAST_HTTP, concurrency=3)
    try:
        started = time.monotonic()
        results = score_chunk(locations, settings)
        seconds = time.monotonic() - started
        # The same fetcher serves the run's next chunk (its connections are reused).
        fetcher = _fetcher_for(settings)
        assert score_chunk(slow[:1], settings)[0]["status"] == "scored"
        assert _fetcher_for(settings) is fetcher
    finally:
        _fetcher_for(settings).close()

    assert len(results) == len(locations)
    for result in results[:7]:
        assert result["status"] == "scored" and 0 <= result["score"] <= 100
        assert set(result) <= {"status", "score", "reason", "components", "issues", "summary",
                               "formula", "width", "height", "format", "bytes", "scorer_version"}
    assert results[7] == {"status": "fetch_error", "kind": "not_found", "transient": False,
                          "reason": f"file not found: {tmp_path / 'gone.jpg'}"}
    assert (results[8]["status"], results[8]["kind"]) == ("fetch_error", "http_404")
    assert results[9]["status"] == "failed" and "HTML" in results[9]["reason"]
    # Six downloads held DELAY seconds each by the server, three at a time (the concurrency):
    # two rounds, not six.
    assert DELAY * 2 <= seconds < DELAY * 4, seconds


def test_over_the_size_cap_is_a_permanent_failure(image_server: ImageServer,
                                                  tmp_path: Path) -> None:
    (tmp_path / "big.jpg").write_bytes(jpeg())
    limit = len(jpeg()) - 1
    settings = WorkSettings(scoring=ScoringConfig(max_bytes=limit),
                            http=dataclasses.replace(FAST_HTTP, max_bytes=limit))
    try:
        results = score_chunk([image_server.url("/good.jpg"), str(tmp_path / "big.jpg")],
                              settings)
    finally:
        _fetcher_for(settings).close()
    for result in results:
        assert (result["status"], result["kind"], result["transient"]) == (
            "fetch_error", "too_large", False)
        assert "limit" in result["reason"]
