"""The error log: one JSON object per line for every row that could not be scored.

Fields: ``id``, ``url`` (without password or query string), ``kind`` (a short cause such as
``http_404``, ``timeout``, ``decode``), ``message``, ``transient`` (a later run may succeed),
``attempt`` (how many runs have failed on this row so far), ``time`` (UTC). The file is appended
to and fsynced once per batch; a line cut short by a crash is ignored when read back, and the
next append starts on a line of its own so it is not glued to (and lost with) the torn one. (A
SIGKILL can cut a write: Linux stops a write of several pages at a page boundary when a fatal
signal is pending.)

The path is checked when the log is opened (:func:`~pixelgrade.backfill.runfiles.
check_writable`): a directory, or a folder that cannot be created or written, is refused
before the run does any work; a write that fails later (disk full) raises the same
:class:`~pixelgrade.errors.RunFileError`, never a bare ``OSError``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pixelgrade.backfill.runfiles import check_writable, write_failure
from pixelgrade.errors import RunFileError


@dataclass(frozen=True)
class ErrorRecord:
    id: Any
    url: str | None
    kind: str
    message: str
    transient: bool
    attempt: int
    time: str


class ErrorLog:
    """Append-only JSON Lines file of :class:`ErrorRecord`."""

    #: The option that sets the path, and the file name suggested in messages.
    OPTION = "--error-log"

    def __init__(self, path: Path, *, example: str = "backfill-errors.log") -> None:
        """Raises :class:`RunFileError` when ``path`` cannot be written (see the module
        docstring); ``example`` is the file name suggested instead (``watch-errors.log``)."""
        self.path = path
        self.example = example
        check_writable(path, self.OPTION, example)

    def append(self, records: Iterable[ErrorRecord]) -> None:
        lines = "".join(json.dumps(asdict(r), default=str) + "\n" for r in records)
        if not lines:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a+", encoding="utf-8") as handle:
                if handle.tell() > 0:
                    handle.seek(handle.tell() - 1)
                    if handle.read(1) != "\n":  # the last append was cut short by a crash
                        lines = "\n" + lines
                handle.write(lines)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise write_failure(exc, self.path, self.OPTION, self.example) from exc

    def read(self) -> list[dict[str, Any]]:
        """Every complete record in the file (a torn last line is skipped)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise RunFileError(f"cannot read {self.OPTION} {self.path}: "
                               f"{exc.strerror or exc}; fix its permissions or pass another "
                               "file") from exc
        records = []
        for line in text.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and "id" in record:
                records.append(record)
        return records

    def attempts(self) -> dict[str, int]:
        """Failures so far per id (as a JSON string of the id)."""
        counts: dict[str, int] = {}
        for record in self.read():
            key = json.dumps(record["id"])
            counts[key] = max(counts.get(key, 0), int(record.get("attempt", 1)))
        return counts

    def retry_ids(self) -> list[Any]:
        """Ids whose latest record is transient, each once, in first-seen order."""
        latest: dict[str, dict[str, Any]] = {}
        for record in self.read():
            latest[json.dumps(record["id"])] = record
        return [record["id"] for record in latest.values() if record.get("transient")]
