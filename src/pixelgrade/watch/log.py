"""What ``watch`` says while it runs: one line per event, text or JSON Lines.

Text (the default), one line per image with a UTC timestamp::

    2026-05-01T09:30:12+00:00 scored  #1042 87 https://cdn.ex/a.jpg
    2026-05-01T09:30:12+00:00 failed  #1043 https://cdn.ex/gone.jpg  http_404: ...
    2026-05-01T09:30:13+00:00 retry   #1044 https://cdn.ex/b.jpg  timeout: ... (next try in 30 s)
    2026-05-01T09:30:13+00:00 skipped #1045 https://cdn.ex/logo.svg  vector image (SVG)

JSON Lines (``--log-format json``; ``--json`` is the same): one object per line with ``ts``
(UTC, milliseconds), ``level`` (``info``; ``warning`` for failures, retries and hints;
``error``), ``event`` and ``message`` (:func:`pixelgrade.service.logs.json_line`, which keeps
passwords and tokens out); an image's line has as ``message`` the failure, the reason for a
skip or the score's summary, and also ``id``, ``url``, ``score``, ``status``, ``kind``,
``transient``, ``attempt``, ``retry_in`` (seconds, transient failures only) and ``via`` (what
found the row: ``notify``, ``poll``, ``sweep`` or ``startup``). Other events (``start``,
``watching``, ``metrics``, ``listen_lost``, ``listen_restored``, ``error``, ``stopping``,
``stopped``...) have a ``message`` and their own fields.
"""

from __future__ import annotations

import sys
from typing import Any, ClassVar, TextIO

from pixelgrade.backfill.checkpoint import now_iso
from pixelgrade.backfill.images import RowResult
from pixelgrade.service.logs import LogFormat, json_line, redact
from pixelgrade.stores.sql import key_to_json


class WatchLog:
    """Writes events to ``stream`` (stdout by default), a line each, flushed at once so a
    pipe, a journal or ``tail -f`` sees every line when it happens."""

    #: Events ``quiet`` still shows: what needs a person.
    QUIET_EVENTS = frozenset({"error", "hint", "overflow", "stopped", "failed", "retry"})
    #: The ``level`` of JSON lines by event (any other: ``info``).
    LEVELS: ClassVar[dict[str, str]] = {
        "error": "error", "failed": "warning", "retry": "warning", "hint": "warning",
        "overflow": "warning", "listen_lost": "warning"}

    def __init__(self, stream: TextIO | None = None, *, as_json: bool = False,
                 quiet: bool = False, verbose: bool = False,
                 log_format: LogFormat | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        #: JSON Lines (``--log-format json``, or its older name ``--json``).
        self.as_json = as_json or log_format == "json"
        #: Only failures, errors and the stop (``--quiet``).
        self.quiet = quiet
        #: Also what limits each score (``--verbose``, text only: JSON lines hold everything).
        self.verbose = verbose

    def row(self, result: RowResult, via: str, *, attempt: int | None = None,
            retry_in: float | None = None) -> None:
        """The line for one image's result."""
        outcome, failure = result.outcome, result.failure
        event = "retry" if outcome is None else outcome.status
        if self.quiet and event not in self.QUIET_EVENTS:
            return
        key = key_to_json(result.row.id)
        if self.as_json:
            self._write(event, failure.message if failure else _message(outcome), {
                "id": key, "url": result.location,
                "score": outcome.score if outcome else None,
                "status": outcome.status if outcome else None,
                "kind": failure.kind if failure else None,
                "transient": failure.transient if failure else None,
                "attempt": attempt if failure else None,
                "retry_in": retry_in, "via": via,
            })
            return
        where = result.location or ""
        if outcome is not None and outcome.status == "scored":
            text = f"#{key} {outcome.score} {where}"
            summary = (outcome.details or {}).get("summary")
            if self.verbose and summary:
                text += f"  {summary}"
        elif outcome is not None and outcome.status == "skipped":
            text = f"#{key} {where}  {(outcome.details or {}).get('reason', '')}"
        elif failure is not None:
            text = f"#{key} {where}  {failure.kind}: {failure.message}"
            if retry_in is not None:
                text += f" (next try in {_seconds(retry_in)})"
        else:  # a failed outcome without a failure record: not produced today
            text = f"#{key} {where}"
        self._line(f"{event:<7} {text}")

    def note(self, event: str, message: str, **fields: Any) -> None:
        """Any other event: ``message`` for people, ``fields`` for machines (JSON only)."""
        if self.quiet and event not in self.QUIET_EVENTS:
            return
        if self.as_json:
            self._write(event, message, fields)
        else:
            self._line(message)

    def _line(self, text: str) -> None:
        self.stream.write(f"{now_iso()} {redact(text)}\n")
        self.stream.flush()

    def _write(self, event: str, message: str | None, fields: dict[str, Any]) -> None:
        self.stream.write(json_line(self.LEVELS.get(event, "info"), event, message, **fields)
                          + "\n")
        self.stream.flush()


def _message(outcome: Any) -> str | None:
    """An image line's ``message`` without a failure: why it was skipped, or what its score
    says (the summary), else the score itself."""
    if outcome is None:
        return None
    details = outcome.details or {}
    if outcome.status == "scored":
        return details.get("summary") or f"score {outcome.score}"
    return details.get("reason")


def _seconds(value: float) -> str:
    if value < 90:
        return f"{value:.0f} s" if value >= 1 else f"{value:.1f} s"
    if value < 5400:
        return f"{value / 60:.0f} min"
    return f"{value / 3600:.1f} h"
