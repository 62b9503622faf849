"""Local files, with the size cap checked before reading."""

from __future__ import annotations

import os

from pixelgrade.errors import FetchError, ImageTooLargeError


def read_file(path: str, max_bytes: int) -> bytes:
    """Read ``path``; refuse files larger than ``max_bytes`` without reading them."""
    try:
        size = os.stat(path).st_size
        if size > max_bytes:
            raise ImageTooLargeError(
                f"file is {size:,} bytes, over the {max_bytes:,}-byte limit "
                "(raise --max-bytes to score it)"
            )
        with open(path, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except FileNotFoundError as exc:
        raise FetchError(f"file not found: {path}", kind="not_found") from exc
    except IsADirectoryError as exc:
        raise FetchError(f"is a directory: {path}", kind="not_a_file") from exc
    except PermissionError as exc:
        raise FetchError(f"permission denied: {path}", kind="permission") from exc
    except OSError as exc:
        raise FetchError(f"cannot read {path}: {exc.strerror or exc}", kind="io",
                         transient=True) from exc
    if len(data) > max_bytes:  # the file grew while we looked at it
        raise ImageTooLargeError(f"file is over the {max_bytes:,}-byte limit")
    return data
