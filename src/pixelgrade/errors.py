"""The exceptions pixelgrade raises, grouped by meaning so callers can catch what they handle.

Every message says what went wrong with *this* input and, where there is one, what to do next.
"""

from __future__ import annotations


class PixelgradeError(Exception):
    """Base class of every error pixelgrade raises on purpose."""


class ImageError(PixelgradeError):
    """The bytes could not be scored. ``status`` is how a report records it."""

    status = "failed"


class ImageDecodeError(ImageError):
    """Empty, truncated, corrupt or non-image bytes."""


class UnsupportedImageError(ImageError):
    """A real image in a format pixelgrade does not decode (e.g. JPEG XL, ICO)."""


class ImageTooLargeError(ImageError):
    """Refused before decoding: over the byte or pixel limit (decompression bomb guard)."""


class VectorImageError(ImageError):
    """SVG, PDF or PostScript: resolution-independent, so a pixel quality score means nothing.

    Recorded as ``skipped``, not ``failed``: nothing is wrong with the file.
    """

    status = "skipped"


class WorkerCrashError(ImageError):
    """The process scoring this image died (a decoder crash, or killed for memory)."""


class ScoringTimeoutError(WorkerCrashError):
    """Scoring this image did not finish in time (a decoder stuck on hostile bytes), so its
    process was stopped."""


class FetchError(PixelgradeError):
    """The bytes could not be read from where the path or URL points.

    ``kind`` is a short machine-readable cause (``http_404``, ``timeout``, ``connection``,
    ``not_found``...), ``transient`` says whether trying again later may succeed (timeouts, 5xx,
    429) or not (404, a missing file), and ``attempts`` how many tries were made.
    """

    def __init__(self, message: str, *, kind: str = "fetch", transient: bool = False,
                 attempts: int = 1) -> None:
        super().__init__(message)
        self.kind = kind
        self.transient = transient
        self.attempts = attempts


class StoreError(PixelgradeError):
    """The database cannot be used as asked: unreachable, missing table or column, bad name.

    ``transient`` says whether the same call may succeed if made again a moment later (the
    connection was lost, the server is restarting, a serialization failure) or not (a missing
    column, permission denied): the backfill retries the first kind only.
    """

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class BackfillLockedError(StoreError):
    """Another backfill holds the lock on this table."""


class RunFileError(PixelgradeError):
    """A file a run keeps (the checkpoint, the error log) cannot be used where asked: the path
    is a directory, or its folder cannot be created or written."""


class CheckpointError(RunFileError):
    """The checkpoint file is unreadable, cannot be written, or belongs to another database or
    table."""


class ExecutorError(PixelgradeError):
    """The executor that fetches and scores cannot be used: an unreachable Dask scheduler,
    Dask not installed, a bad ``--executor`` value."""
