"""Structured logs of the services (``--log-format json`` on ``watch`` and ``serve``): one JSON
object per line, with ``ts`` (UTC, ISO 8601, milliseconds), ``level`` (``debug``, ``info``,
``warning``, ``error``), ``event`` (what happened, a short name), ``message`` (for people) and
the event's own fields.

Never a secret: every string that goes out, message and fields, passes through
:func:`redact` (database URLs lose their password as :func:`~pixelgrade.stores.urls.
without_password` has it, ``password=`` in a libpq connection string and ``token=`` in an
address lose their value).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from pixelgrade.stores.urls import without_password

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
_KEY_VALUE = re.compile(r"\b(password|passwd|token|apikey|api_key)=([^&\s'\"]+)",
                        re.IGNORECASE)
MASK = "***"


def redact(text: str) -> str:
    """``text`` without passwords and tokens (see the module docstring)."""
    text = _URL.sub(lambda found: without_password(found.group(0), MASK), text)
    return _KEY_VALUE.sub(lambda found: f"{found.group(1)}={MASK}", text)


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(item) for item in value]
    return value


def timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def json_line(level: str, event: str, message: str | None, **fields: Any) -> str:
    """One log line (no newline): ``ts``, ``level``, ``event``, ``message``, then
    ``fields``, secrets redacted."""
    record = {"ts": timestamp(), "level": level, "event": event, "message": message}
    record.update((key, value) for key, value in fields.items() if key not in record)
    return json.dumps(_redacted(record), default=str)


class JsonFormatter(logging.Formatter):
    """Formats :mod:`logging` records (uvicorn's, for ``serve``) as :func:`json_line`:
    ``event`` is ``request`` for an access-log line (with ``client``, ``method``, ``path``,
    ``status``), ``server`` for uvicorn's own lines (started, stopping...), else the logger's
    name."""

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {"logger": record.name}
        event = "server" if record.name in ("uvicorn", "uvicorn.error") else record.name
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(
                record.args) == 5:
            client, method, path, _version, status = record.args
            event = "request"
            fields.update(client=client, method=method, path=path, status=status)
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        return json_line(record.levelname.lower(), event, record.getMessage(), **fields)


def json_log_config() -> dict[str, Any]:
    """A :func:`logging.config.dictConfig` for uvicorn and pixelgrade's own loggers, with every
    line as JSON on stdout."""
    handler = {"class": "logging.StreamHandler", "formatter": "json",
               "stream": "ext://sys.stdout"}
    return {
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"default": handler, "access": dict(handler)},
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"level": "INFO"},
            "uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
            # The scoring service's and the webhook's own warnings (a write that failed, a
            # re-score trigger missing), as JSON lines too.
            "pixelgrade": {"handlers": ["default"], "level": "INFO", "propagate": False},
        },
    }


class JsonConsole:
    """Stands in for :class:`rich.console.Console` where a command prints notes for people
    (``serve``'s start-up lines): each ``print`` becomes one :func:`json_line` of ``event``,
    its rich markup removed. ``quiet``: prints nothing (as ``Console(quiet=True)``)."""

    def __init__(self, stream: TextIO | None = None, *, event: str = "note",
                 level: str = "info", quiet: bool = False) -> None:
        self.stream = stream
        self.event = event
        self.level = level
        self.quiet = quiet

    def print(self, *objects: Any, **_: Any) -> None:
        if self.quiet:
            return
        from rich.text import Text

        text = " ".join(Text.from_markup(o).plain if isinstance(o, str) else str(o)
                        for o in objects)
        stream = self.stream if self.stream is not None else sys.stdout
        stream.write(json_line(self.level, self.event, text) + "\n")
        stream.flush()
