"""Database URLs as people see them: as typed, never with the password."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def without_password(db: str, mask: str = "") -> str:
    """``db`` as typed, with its password removed (or replaced by ``mask``): what a
    checkpoint, a message or ``pixelgrade config`` may show."""
    parts = urlsplit(db)
    credentials, at, host = parts.netloc.rpartition("@")
    user, colon, password = credentials.partition(":")
    if not (at and colon and password):
        return db
    return urlunsplit(parts._replace(netloc=f"{user}{':' + mask if mask else ''}@{host}"))
