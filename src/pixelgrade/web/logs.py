"""uvicorn's logging for ``pixelgrade serve``, with API tokens kept out of the access log.

The address ``serve`` prints signs a browser in with ``?token=...``; at ``--log-level info``
uvicorn would write that request line, token and all, wherever its output goes (a terminal,
but as often a log file or a journal). The access log shows ``token=<redacted>`` instead.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

_TOKEN = re.compile(r"([?&]token=)[^&#\s]*", re.IGNORECASE)


def redact_token(text: str) -> str:
    """``text`` with the value of every ``token=`` query parameter replaced."""
    return _TOKEN.sub(r"\1<redacted>", text)


class RedactToken(logging.Filter):
    """Redacts ``token=`` in a log record's message and its string arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_token(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact_token(a) if isinstance(a, str) else a
                                for a in record.args)
        return True


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's own logging configuration, with :class:`RedactToken` on its access log."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_token"] = {"()": RedactToken}
    for name in ("uvicorn.access", "uvicorn.error"):
        config["loggers"].setdefault(name, {}).setdefault("filters", []).append("redact_token")
    return config
