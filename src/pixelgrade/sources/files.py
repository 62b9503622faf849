"""Local files: confined to a root folder, regular files only, size cap checked before reading.

A local path in the URL column is written by whoever can write the table, so it is treated
like a URL from a stranger (OWASP Path Traversal; CWE-22 and CWE-59): :func:`resolve_local`
accepts it only when, with every symlink and ``..`` resolved, it names a regular file inside
the folder the operator configured (``--root``). Anything else is refused with a reason that
names the value as stored, never the server's absolute paths (those are for the server's
logs, not for whoever reads the gallery). :func:`read_file` refuses devices, FIFOs and
directories after opening (``fstat`` of the open file), so ``/dev/zero`` or a FIFO can never
stall a worker even if a path changes between the check and the read.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from pixelgrade.errors import FetchError, ImageTooLargeError

#: ``scheme://...`` or a scheme that never needs slashes (``data:``, ``javascript:``...). One
#: letter before the colon is a Windows drive, not a scheme.
_URL_SCHEME = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.\-]+)://|(?P<bare>data|javascript|mailto|jar|blob|about):",
    re.IGNORECASE)

_ROOT_ADVICE = "pass --root DIR with the folder your image paths are under"


def url_scheme(value: str) -> str | None:
    """The scheme ``value`` starts with (lower case), or None for a plain path."""
    found = _URL_SCHEME.match(value.strip())
    if found is None:
        return None
    return (found.group("scheme") or found.group("bare")).lower()


def refuse_scheme(value: str, scheme: str) -> FetchError:
    """The error for a location with a scheme pixelgrade does not read (all but http/https)."""
    return FetchError(
        f"{scheme}: locations are not read (only http:// and https:// URLs, and paths under "
        f"--root): fix the location", kind="unsupported_scheme", transient=False)


def resolve_local(value: str, root: Path | None) -> str:
    """The real path of ``value`` (as stored in the table) if it is a regular file under
    ``root``; raises :class:`FetchError` otherwise.

    A relative ``value`` is taken from ``root``; an absolute one must lead inside it. Symlinks
    and ``..`` are resolved before the check, so neither can lead out. With no ``root``, local
    paths are refused: there is no folder they are known to be allowed in.
    """
    scheme = url_scheme(value)
    if scheme is not None:
        raise refuse_scheme(value, scheme)
    shown = value if len(value) <= 200 else value[:200] + "…"
    if root is None:
        raise FetchError(f"{shown}: local paths are read only under a folder you name; "
                         f"{_ROOT_ADVICE}", kind="no_root", transient=False)
    if "\x00" in value:
        raise FetchError(f"{shown!r}: a NUL byte in a path", kind="invalid_path",
                         transient=False)
    base = os.path.realpath(root)
    real = os.path.realpath(os.path.join(base, value))
    if os.path.commonpath([base, real]) != base:
        raise FetchError(f"{shown}: outside the image folder (--root), refused; store paths "
                         f"relative to it, or {_ROOT_ADVICE}", kind="outside_root",
                         transient=False)
    try:
        mode = os.stat(real).st_mode
    except FileNotFoundError as exc:
        raise FetchError(f"file not found: {shown}", kind="not_found") from exc
    except PermissionError as exc:
        raise FetchError(f"permission denied: {shown}", kind="permission") from exc
    except OSError as exc:
        raise FetchError(f"cannot read {shown}: {exc.strerror or type(exc).__name__}",
                         kind="io", transient=True) from exc
    if not stat.S_ISREG(mode) or _on_kernel_filesystem(real):
        kind = _file_kind(mode) if not stat.S_ISREG(mode) else "a kernel file (/proc, /sys)"
        raise FetchError(f"{shown}: {kind}, not a regular file",
                         kind="not_a_file", transient=False)
    return real


def _on_kernel_filesystem(path: str) -> bool:
    """Files under /proc, /sys and /dev look regular but are the kernel's (environment
    variables, memory): never images."""
    return any(path == top or path.startswith(top + os.sep)
               for top in ("/proc", "/sys", "/dev"))


def read_file(path: str, max_bytes: int) -> bytes:
    """Read ``path``; refuse files larger than ``max_bytes`` without reading them, and
    anything but a regular file (checked on the open file, so a swapped path cannot slip a
    device or FIFO in)."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer (no effect on regular files).
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
                     | getattr(os, "O_BINARY", 0))
    except FileNotFoundError as exc:
        raise FetchError(f"file not found: {path}", kind="not_found") from exc
    except IsADirectoryError as exc:
        raise FetchError(f"is a directory: {path}", kind="not_a_file") from exc
    except PermissionError as exc:
        raise FetchError(f"permission denied: {path}", kind="permission") from exc
    except OSError as exc:
        raise FetchError(f"cannot read {path}: {exc.strerror or exc}", kind="io",
                         transient=True) from exc
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise FetchError(f"{_file_kind(info.st_mode)}, not a regular file: {path}",
                         kind="not_a_file")
    with open(fd, "rb") as handle:
        if info.st_size > max_bytes:
            raise ImageTooLargeError(
                f"file is {info.st_size:,} bytes, over the {max_bytes:,}-byte limit "
                "(raise --max-bytes to score it)"
            )
        try:
            data = handle.read(max_bytes + 1)
        except OSError as exc:
            raise FetchError(f"cannot read {path}: {exc.strerror or exc}", kind="io",
                             transient=True) from exc
    if len(data) > max_bytes:  # the file grew while we looked at it
        raise ImageTooLargeError(f"file is over the {max_bytes:,}-byte limit")
    return data


def _file_kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"
