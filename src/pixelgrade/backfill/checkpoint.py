"""The checkpoint: how far a backfill got, written atomically after every committed batch.

Atomic means a reader (``--resume``, or a person with ``cat``) sees either the previous
checkpoint or the new one, never a half-written file, even if the process is killed or the
machine loses power mid-write: the JSON goes to a temporary file in the same directory, is
fsynced, renamed over the old one (an atomic replace on POSIX), and the directory is fsynced so
the rename itself is durable.

The path is checked when the checkpoint is loaded, at the start of every run
(:func:`~pixelgrade.backfill.runfiles.check_writable`): a directory, or a folder that cannot be
created or written, is refused with what to pass instead before any work is done, and a save
that fails later raises :class:`~pixelgrade.errors.CheckpointError`, never a bare ``OSError``.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pixelgrade.backfill.runfiles import check_writable, write_failure
from pixelgrade.errors import CheckpointError

FORMAT_VERSION = 1
OPTION = "--checkpoint"
#: The file name suggested in messages (the option's default).
EXAMPLE = "backfill-checkpoint.json"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class Checkpoint:
    """State of one backfill run. ``cursor`` is the last id of the last committed batch."""

    store: str
    selection: dict[str, Any]
    cursor: Any = None
    finished: bool = False
    processed: int = 0
    written: int = 0
    scored: int = 0
    skipped: int = 0
    failed: int = 0
    retry_later: int = 0
    started_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    format_version: int = FORMAT_VERSION
    #: The command's settings (store, table, columns, root, network opt-ins...), so that
    #: ``--resume`` continues the same run without retyping them. Never a secret: the
    #: database URL is kept without its password.
    settings: dict[str, Any] = field(default_factory=dict)

    def check_belongs_to(self, store: str, selection: dict[str, Any], path: Path) -> None:
        """Refuse a checkpoint written for another database/table or another selection."""
        if self.store != store:
            raise CheckpointError(
                f"checkpoint {path} belongs to {self.store}, not to {store}; pass "
                "--checkpoint with another file, or delete it to start over"
            )
        if self.selection != selection:
            raise CheckpointError(
                f"checkpoint {path} was written by a run with other options ({self.selection}, "
                f"now {selection}); rerun with the same --retry-failed/--rescore-version, or "
                "delete it to start over"
            )


def load(path: Path) -> Checkpoint | None:
    """The checkpoint at ``path``, or None when there is none. Raises
    :class:`CheckpointError` when ``path`` could not be written at the end of the batch (a
    directory, an unwritable folder: see the module docstring) or cannot be read."""
    check_writable(path, OPTION, EXAMPLE, CheckpointError)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CheckpointError(f"checkpoint {path} cannot be read ({exc.strerror or exc}); fix "
                              "its permissions, or pass --checkpoint with another file") from exc
    try:
        raw = json.loads(text)
        if raw.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"format version {raw.get('format_version')!r}")
        return Checkpoint(**raw)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({exc}); delete it to start over (rows already "
            "scored are not redone: only rows still without a score are picked)"
        ) from exc


def save(path: Path, checkpoint: Checkpoint) -> None:
    """Write ``checkpoint`` to ``path`` atomically and durably."""
    checkpoint.updated_at = now_iso()
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    data = json.dumps(asdict(checkpoint), indent=2, sort_keys=True).encode()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        raise write_failure(exc, path, OPTION, EXAMPLE, CheckpointError) from exc
