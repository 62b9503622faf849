"""Where image bytes come from: local files and http(s) URLs.

``read_bytes(location, max_bytes)`` returns the bytes or raises :class:`FetchError` (cannot be
read) or :class:`ImageTooLargeError` (over the cap, detected before or while reading, never after
reading everything). Many URLs at once (the backfill): :class:`HttpFetcher`.

Locations written by others (the table's rows) are confined: URLs to public addresses only
(:mod:`pixelgrade.sources.netguard`), local paths to regular files under a root folder
(:func:`resolve_local`).
"""

from __future__ import annotations

from pixelgrade.sources.files import read_file, resolve_local
from pixelgrade.sources.http import HttpFetcher, HttpPolicy, is_url, read_url, redact_url

__all__ = [
    "HttpFetcher",
    "HttpPolicy",
    "is_url",
    "read_bytes",
    "read_file",
    "read_url",
    "redact_url",
    "resolve_local",
]


def read_bytes(location: str, max_bytes: int, policy: HttpPolicy | None = None) -> bytes:
    """Bytes of a local path or an http(s) URL, at most ``max_bytes`` of them (URLs under
    ``policy``, SSRF guard included)."""
    if is_url(location):
        return read_url(location, max_bytes, policy=policy)
    return read_file(location, max_bytes)
