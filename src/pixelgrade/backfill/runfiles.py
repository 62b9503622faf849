"""Checks on the paths of the files a run keeps (``--checkpoint``, ``--error-log``).

A run writes these after its first batch; a path that cannot work (a directory, a folder under
a regular file, a folder this user may not write) is refused when the run starts, before any
image is fetched, with what to pass instead. The checks do not touch the disk (a folder that
does not exist yet is created at the first write, as before). What they cannot see (a disk
that fills up, a read-only mount, permissions changed mid-run) surfaces as an ``OSError`` at the
write, which :func:`write_failure` turns into the same kind of message.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from pixelgrade.errors import RunFileError

Error = Callable[[str], RunFileError]


def check_writable(path: Path, option: str, example: str,
                   error: Error = RunFileError) -> None:
    """Raise ``error`` unless ``path`` can be written as a file: it is not a directory, and its
    folder exists (or can be created) and is writable. ``option`` names the command-line
    option (``--checkpoint``) and ``example`` a file name to suggest."""
    suggestion = Path.cwd() / example
    if path.is_dir():
        raise error(f"{option} {path} is a directory; pass a file path such as "
                    f"{path / example}")
    folder = path.parent
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise error(f"{option} {path}: its folder {folder} cannot be created because "
                    f"{existing} is a file; pass a file path such as {suggestion}")
    if not os.access(existing, os.W_OK | os.X_OK):
        if existing == folder:
            problem = f"its folder {folder} is not writable by this user"
        else:
            problem = (f"its folder {folder} does not exist and cannot be created in "
                       f"{existing}, which is not writable by this user")
        raise error(f"{option} {path}: {problem}; fix the permissions or pass a file path "
                    f"such as {suggestion}")
    if path.exists() and not os.access(path, os.W_OK):
        raise error(f"{option} {path} is not writable by this user; fix its permissions or "
                    f"pass a file path such as {suggestion}")


def write_failure(exc: OSError, path: Path, option: str, example: str,
                  error: Error = RunFileError) -> RunFileError:
    """The error for a write to ``path`` that failed with ``exc`` (one line, what to do)."""
    reason = exc.strerror or str(exc)
    return error(f"cannot write {option} {path}: {reason}; free some space or fix the "
                 f"folder's permissions, or pass a file path in a writable folder such as "
                 f"{Path.cwd() / example}")
