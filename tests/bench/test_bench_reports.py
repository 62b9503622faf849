"""The benchmarks' own arithmetic: the py-spy summary and the peers' per-core comparison.

The benchmarks themselves are too slow for ``make test``; what they conclude from their
measurements is not, and a wrong share or ratio would put a wrong claim in the docs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from peers import PeerRun, peer_names, report
from profile_backfill import parse_raw, summary

MAIN = 'process 100:"python bench/backfill.py --child e2e"'
SERVER = 'process 101:"python -c from multiprocessing.forkserver import main"'
WORKER = 'process 102:"python -c from multiprocessing.forkserver import main"'
RAW = "\n".join([
    # The main process: one sample waiting in select, three sending bytes to a worker.
    f"{MAIN};<module> (backfill.py:900);run_backfill (pixelgrade/backfill/run.py:40);"
    "EpollSelector.select (selectors.py:468) 1",
    f"{MAIN};Thread._bootstrap (threading.py:1002);_feed (multiprocessing/queues.py:250);"
    "Connection._send (multiprocessing/connection.py:373) 3",
    # A worker: decode twice (two line numbers of the same function), analysis once.
    f"{MAIN};{SERVER};{WORKER};_process_worker (concurrent/futures/process.py:256);"
    "score_bytes (pixelgrade/scoring/__init__.py:40);decode (pixelgrade/scoring/decode.py:80);"
    "ImageFile.load (PIL/ImageFile.py:300) 4",
    f"{MAIN};{SERVER};{WORKER};_process_worker (concurrent/futures/process.py:256);"
    "score_bytes (pixelgrade/scoring/__init__.py:40);decode (pixelgrade/scoring/decode.py:80);"
    "ImageFile.load (PIL/ImageFile.py:310) 2",
    f"{MAIN};{SERVER};{WORKER};_process_worker (concurrent/futures/process.py:256);"
    "score_bytes (pixelgrade/scoring/__init__.py:44);"
    "noise_sigma (pixelgrade/scoring/signals/noise.py:60) 2",
    # The forkserver importing: neither main process nor worker.
    f"{MAIN};{SERVER};<module> (pixelgrade/__init__.py:1) 1",
    "not a sample line",
])


def test_profile_kinds_own_and_total() -> None:
    kinds = parse_raw(RAW, main_pid=100)
    assert set(kinds) == {"backfill main process", "scoring worker", "other child process"}
    samples, own, total = kinds["backfill main process"]
    assert samples == 4
    assert own["(waiting: select, lock or queue)"] == 1
    assert own["Connection._send (multiprocessing/connection.py)"] == 3
    # A waiting sample counts in no function's total time.
    assert "run_backfill (pixelgrade/backfill/run.py)" not in total
    samples, own, total = kinds["scoring worker"]
    assert samples == 8
    assert own["ImageFile.load (PIL/ImageFile.py)"] == 6  # both line numbers: one function
    assert total["score_bytes (pixelgrade/scoring/__init__.py)"] == 8
    assert total["decode (pixelgrade/scoring/decode.py)"] == 6
    assert kinds["other child process"][0] == 1


def test_profile_summary_shares() -> None:
    text = "\n".join(summary(parse_raw(RAW, main_pid=100), top=2))
    assert "**scoring worker** (8 samples)" in text
    assert "| 1 | `ImageFile.load (PIL/ImageFile.py)` | 75.0% | " \
           "`score_bytes (pixelgrade/scoring/__init__.py)` | 100.0% |" in text
    # The harness frames are left out of the total column.
    assert "_process_worker" not in text and "(backfill.py)" not in text


def test_peers_per_core_and_verdict() -> None:
    runs = [PeerRun("pixelgrade (`score_bytes`)", "score", images=100, seconds=2.0,
                    processes=2, cpu_seconds=4.0),
            PeerRun("sharp 0.35.5 (libvips 8.18.7; the original stack)", "stats", images=100,
                    seconds=25.0, processes=2, cpu_seconds=40.0),
            PeerRun("fastpeer", "little", images=100, seconds=1.0, processes=4),
            PeerRun("cleanvision `find_issues()` (default checks)", "checks", processes=2,
                    missing="cleanvision not installed")]
    # 4 processes on 2 cores: per core = images/s / 2, not / 4.
    assert runs[2].per_core(cores=2) == pytest.approx(50.0)
    table, verdict = report(runs, cores=2)
    # sharp: 4 images/s on 2 cores = 2.0 per core; 100 images in 40 CPU s = 2.5 per CPU s.
    assert any("| 2.0 | 2.5 | 12.5x; 10.0x as fast |" in line for line in table)
    # fastpeer's CPU was not measured: no per-CPU-second figure rather than a wrong one.
    assert any("| 50.0 | - | 0.5x; - as fast |" in line for line in table)
    assert verdict[0] == ("- met: pixelgrade faster per core than sharp 0.35.5 (25.0 vs 2.0 "
                          "images/s per core, 12.5x; per CPU second 10.0x)")
    assert verdict[1].startswith("- MISSED: pixelgrade faster per core than fastpeer")
    assert verdict[2] == ("- not checked: pixelgrade vs cleanvision `find_issues()` (default "
                          "checks) (cleanvision not installed)")


def test_peer_names_repeat_every_file() -> None:
    assert peer_names(["a", "b"], 3) == ["a", "b", "a", "b", "a", "b"]
