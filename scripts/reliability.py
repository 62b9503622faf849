"""Run the reliability tests and write what they tried and saw to ``docs/reliability.md``.

    python scripts/reliability.py                    # quick sizes (as in `make test`), print
    python scripts/reliability.py --full --write docs/reliability.md     # `make stress`

Runs ``pytest tests/reliability`` plus the fuzz test of every format, with
``PIXELGRADE_RELIABILITY_REPORT`` naming a temporary file (and ``PIXELGRADE_STRESS=1`` with
``--full``). Each test appends its figures there as JSON lines
(``tests.reliability.report.record(check, **figures)``); pytest's JUnit XML gives each test's
outcome. The document has a table per check (what was tried, how many, what came of it), the
command, the date, the machine and every test's pass/fail. A check that recorded nothing is
listed as **not run**, never left out. Exits with pytest's exit code, after writing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TESTS = ["tests/reliability", "tests/scoring/test_fuzz.py::test_every_format_survives_mutation"]
REPORT_ENV = "PIXELGRADE_RELIABILITY_REPORT"
STRESS_ENV = "PIXELGRADE_STRESS"


@dataclass(frozen=True)
class Check:
    """A check the issue asks for (issue 7), as the tests name it in ``record``."""

    name: str
    title: str
    tried: str


#: In the order of issue 7. Checks recorded under other names are listed after these.
CHECKS: tuple[Check, ...] = (
    Check("crash_kill", "Crash safety: SIGKILL and --resume",
          "A backfill on PostgreSQL and SQLite is killed with SIGKILL at random moments and "
          "resumed with `--resume` each time; then every row must be scored exactly once, "
          "failures recorded, the checkpoint parseable and the error log free of duplicates."),
    Check("db_fault", "Database faults",
          "The database connection is cut mid-batch (`pg_terminate_backend`) and the server "
          "restarted during a run: the run reconnects with backoff or stops cleanly with its "
          "checkpoint."),
    Check("network_faults", "Network faults",
          "A raw asyncio server on loopback resets connections (before the headers, mid-body), "
          "stalls (no answer, headers then silence, half a body then silence), redirects "
          "forever and in a loop, answers 429 to everything, sends 8 MB after announcing 100 "
          "bytes, streams a body with no length forever, sends a gzip bomb and trickles one "
          "byte per half read-timeout; each row must end scored, failed with a reason or left "
          "for retry, the run must end within its timeouts (a thread joined with a hard "
          "timeout), and the parent's peak memory must not grow with what the server sends."),
    Check("network_faults_sync", "Network faults: the synchronous reader",
          "The same faulty routes read at once, one thread each, by `read_url` (what "
          "`pixelgrade score URL` uses): each must end with its bytes or the backfill's error, "
          "within the timeouts."),
    Check("rate_limit_429", "429 storm: Retry-After and --rate",
          "Every image is answered 429 with `Retry-After: 1` once, then served, in a backfill "
          "with `--rate 4`: the server counts the request times (retries included)."),
    Check("hostile_input", "Hostile input in the scoring processes",
          "A corpus made in code (truncated and corrupt JPEG/PNG/WebP/HEIC, empty, HTML and JSON "
          "as images, header bombs in PNG/JPEG/WebP/GIF/TIFF/HEIC, a 100 MP zlib bomb, a GIF with "
          "10,000 frames, 1x100000 and 100000x1 strips, SVG with external references and XXE, "
          "polyglots, a TIFF claiming 65,535 IFD entries, CMYK, 16-bit, animated, EXIF garbage) "
          "scored one by one in the real worker pool with a timeout; peak RSS per worker "
          "(VmHWM) measured for each file."),
    Check("worst_case_memory", "Worst case memory per worker at the default limits",
          "An RGB PNG of exactly 100 MP (the default `--max-pixels`, a 290 KB file) scored in a "
          "worker: what one scoring process may need, to plan `--workers` with."),
    Check("stuck_decoder", "A scoring process that never answers",
          "A stand-in decoder loops forever on one file of a backfill: its process must be "
          "stopped after the scoring timeout, its row failed, the images beside it scored."),
    Check("hostile_backfill", "Hostile corpus through a backfill",
          "The same corpus as local files in a SQLite table, backfilled: the run must finish "
          "with every row recorded and no worker crash."),
    Check("fuzz", "Fuzzing the decoder",
          "Hypothesis mutates a valid seed of every format (bit flips, truncation, splicing in "
          "slices of other seeds) and feeds `decode` and `score_bytes`: only the documented "
          "errors may be raised and every report must keep the JSON contract."),
    Check("ssrf", "SSRF",
          "URLs from the table that resolve to loopback, private, link-local (cloud metadata) or "
          "multicast addresses are refused, including after redirects and DNS tricks, unless "
          "`--allow-private-network`."),
    Check("secrets", "Secrets",
          "A run with a known database password and service-role key: output, logs, error logs, "
          "checkpoints and exception messages are searched for them."),
    Check("concurrency", "Concurrent writers",
          "The app (or `watch`) writes scores while a backfill runs over the same rows: every "
          "score must stay as first written, and the counts must add up."),
)


def run_tests(full: bool, extra: list[str]) -> tuple[int, list[dict[str, Any]],
                                                     list[dict[str, Any]], str, float]:
    """Run pytest; return (exit code, records, test outcomes, the command, seconds)."""
    with tempfile.TemporaryDirectory(prefix="pixelgrade-reliability-") as folder:
        records_path = Path(folder) / "records.jsonl"
        junit_path = Path(folder) / "junit.xml"
        env = {**os.environ, REPORT_ENV: str(records_path)}
        env.pop(STRESS_ENV, None)
        if full:
            env[STRESS_ENV] = "1"
        command = [sys.executable, "-m", "pytest", *TESTS, "-q", "-p", "no:cacheprovider",
                   f"--junitxml={junit_path}", *extra]
        started = time.monotonic()
        code = subprocess.run(command, cwd=ROOT, env=env, check=False).returncode
        seconds = time.monotonic() - started
        records = [json.loads(line) for line in records_path.read_text().splitlines()
                   if line.strip()] if records_path.exists() else []
        outcomes = read_junit(junit_path) if junit_path.exists() else []
    shown = ("PIXELGRADE_STRESS=1 " if full else "") + "python -m pytest " + " ".join(
        shlex.quote(t) for t in [*TESTS, *extra])
    return code, records, outcomes, shown, seconds


def read_junit(path: Path) -> list[dict[str, Any]]:
    """Each test case of a JUnit XML file: name, outcome (passed/failed/error/skipped), seconds,
    and the first line of the message for anything but a pass."""
    cases = []
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed"}.get(child.tag, child.tag)
                message = (child.get("message") or child.text or "").strip().splitlines()[:1]
                message = message[0][:160] if message else ""
                break
        module = case.get("classname", "").replace(".", "/")
        cases.append({"test": f"{module}.py::{case.get('name')}", "outcome": outcome,
                      "seconds": float(case.get("time") or 0.0), "message": message})
    return cases


def machine() -> str:
    """CPU model, cores, memory, OS and Python: enough to compare two runs' timings."""
    model = ""
    memory = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f", {int(line.split()[1]) / 2**20:.1f} GB RAM"
                break
    except OSError:
        pass
    cpu = f"{model or platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    return (f"{cpu}{memory}; {platform.system()} {platform.release()}; "
            f"Python {platform.python_version()}")


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, list | dict):
        return json.dumps(value, sort_keys=True).replace("|", "\\|")
    return str(value).replace("|", "\\|")


def _figure_keys(records: list[dict[str, Any]]) -> list[str]:
    keys: list[str] = []
    for item in records:
        keys.extend(k for k in item if k not in ("check", "time", "full_size") and k not in keys)
    return keys


def check_section(check: Check, records: list[dict[str, Any]]) -> list[str]:
    lines = [f"## {check.title}", "", check.tried, ""]
    if not records:
        lines += ["**Not run**: no test recorded figures for this check in this run (see the "
                  "test results below: it failed before recording, was skipped, or is not "
                  "in this tree yet).", ""]
        return lines
    size = {item["full_size"] for item in records if "full_size" in item}
    keys = _figure_keys(records)
    if len(records) == 1:
        lines += ["| figure | value |", "| --- | --- |"]
        lines += [f"| {key} | {_cell(records[0][key])} |" for key in keys]
    else:
        lines += ["| " + " | ".join(keys) + " |", "|" + " --- |" * len(keys)]
        lines += ["| " + " | ".join(_cell(item.get(key, "")) for key in keys) + " |"
                  for item in records]
    label = {frozenset({True}): "full size (`make stress`)",
             frozenset({False}): "quick size (as in `make test`)"}.get(frozenset(size), "mixed")
    lines += ["", f"Size: {label}; recorded by `{check.name}`.", ""]
    return lines


def render(records: list[dict[str, Any]], outcomes: list[dict[str, Any]], *, command: str,
           code: int, seconds: float, started: str, load: tuple[float, float]) -> str:
    by_check: dict[str, list[dict[str, Any]]] = {}
    for item in records:
        by_check.setdefault(str(item.get("check", "?")), []).append(item)
    known = {check.name for check in CHECKS}
    extra = [Check(name, f"Other check: `{name}`", "Recorded by a test not described here.")
             for name in by_check if name not in known]
    checks = [*CHECKS, *extra]
    counts = {o: sum(1 for t in outcomes if t["outcome"] == o)
              for o in ("passed", "failed", "error", "skipped")}
    recorded = sum(1 for check in checks if by_check.get(check.name))
    lines = [
        "# Reliability: kill it, starve it, feed it garbage",
        "",
        "Generated by `scripts/reliability.py` (`make stress` runs it at full size); do not edit "
        "by hand, rerun it. Issue 7 asks for these checks; each test records what it tried and "
        "what it saw.",
        "",
        f"* Command: `{command}` ({seconds:,.0f} s, pytest exit code {code})",
        f"* Date: {started} (UTC)",
        f"* Machine: {machine()}; load average {load[0]:.1f} at the start, {load[1]:.1f} at the "
        "end (timings from a busy machine are upper bounds)",
        f"* Tests: {counts['passed']} passed, {counts['failed']} failed, {counts['error']} "
        f"errors, {counts['skipped']} skipped; {recorded} of {len(checks)} checks recorded "
        "figures",
        "",
        "| check | result |",
        "| --- | --- |",
    ]
    for check in checks:
        status = f"{len(by_check[check.name])} record(s)" if by_check.get(check.name) \
            else "**not run**"
        lines.append(f"| {check.title} | {status} |")
    lines.append("")
    for check in checks:
        lines += check_section(check, by_check.get(check.name, []))
    lines += ["## Test results", "", "| test | result | seconds |", "| --- | --- | --- |"]
    for test in outcomes:
        result = test["outcome"] if not test["message"] else \
            f"{test['outcome']}: {_cell(test['message'])}"
        lines.append(f"| `{test['test']}` | {result} | {test['seconds']:.1f} |")
    if not outcomes:
        lines.append("| (pytest reported no tests) | not run | |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true",
                        help="full sizes (PIXELGRADE_STRESS=1), as `make stress`")
    parser.add_argument("--write", type=Path, metavar="FILE",
                        help="write the document here (default: print it)")
    parser.add_argument("pytest_args", nargs="*",
                        help="extra pytest arguments, after `--` (e.g. -- -k network)")
    args = parser.parse_args(argv)
    started = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    load_start = os.getloadavg()[0]
    code, records, outcomes, command, seconds = run_tests(args.full, args.pytest_args)
    document = render(records, outcomes, command=command, code=code, seconds=seconds,
                      started=started, load=(load_start, os.getloadavg()[0]))
    if args.write:
        args.write.parent.mkdir(parents=True, exist_ok=True)
        args.write.write_text(document)
        print(f"wrote {args.write} ({len(records)} records, {len(outcomes)} tests)")
    else:
        sys.stdout.write(document)
    return code


if __name__ == "__main__":
    sys.exit(main())
