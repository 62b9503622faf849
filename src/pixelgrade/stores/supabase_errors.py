"""Which Supabase (PostgREST) failures are worth retrying, and what to tell the user about the
others: the REST counterpart of :mod:`pixelgrade.stores.sql_errors`.

The engine retries a database call only when its :class:`~pixelgrade.errors.StoreError` says
``transient=True``, so every failure of the REST API is sorted here:

* **Transient** (the same request a moment later may succeed): the network (connection
  refused or reset, DNS, a timeout: ``httpx.TransportError``), HTTP 408, 425, 429 and 5xx from
  the gateway or from PostgREST, PostgREST's own "cannot reach the database" codes (PGRST000
  to PGRST003, answered 503/504), and the SQLSTATEs that :mod:`~pixelgrade.stores.sql_errors`
  retries (class 08, serialization failures, deadlocks, admin shutdown, too many connections).
* **Permanent** (retrying only delays the message): a refused key (401, PGRST301-PGRST303), a
  permission (403, 42501), a missing table or function (404: PGRST205, PGRST202, 42P01,
  42883), a missing or misspelt column (400: PGRST204, 42703), any other 4xx, and any other
  SQLSTATE (the database answered, and would answer the same again), even when sent with a 500.

PostgREST's codes: https://docs.postgrest.org/en/v12/references/errors.html. A JSON error body
that carries no code (an API gateway's ``{"message": ...}``) is sorted by its HTTP status, which
:class:`StatusNotes` keeps for the thread that made the request.

Messages name the project by host only; the service-role key is never part of one (it travels
in headers, which no message quotes).
"""

from __future__ import annotations

import re
import threading
from typing import Any

import httpx

from pixelgrade.errors import StoreError
from pixelgrade.stores.sql_errors import TRANSIENT_SQLSTATES

KEY_VARIABLE = "SUPABASE_SERVICE_ROLE_KEY"
#: HTTP statuses worth a retry: timeouts, too early, too many requests, server and gateway
#: errors (520-524: Cloudflare's, in front of hosted Supabase).
TRANSIENT_STATUSES = frozenset({408, 425, 429})
#: PostgREST could not reach or get a connection to the database.
TRANSIENT_POSTGREST_CODES = frozenset({"PGRST000", "PGRST001", "PGRST002", "PGRST003"})
KEY_CODES = frozenset({"PGRST301", "PGRST302", "PGRST303"})
MISSING_FUNCTION_CODES = frozenset({"PGRST202", "42883"})
MISSING_TABLE_CODES = frozenset({"PGRST205", "42P01"})
MISSING_COLUMN_CODES = frozenset({"PGRST204", "42703"})
MIGRATE = ("run `pixelgrade migrate --supabase --sql` and apply the SQL it prints in the "
           "Supabase SQL editor")
_SQLSTATE = re.compile(r"[0-9A-Z]{5}")


class StatusNotes:
    """The HTTP status of the last response each thread received from one HTTP client.

    postgrest-py turns an error body into an ``APIError`` holding only the body's ``code``;
    when the body has none (a gateway's JSON), the status is the only clue left. Installed as
    an httpx response hook; per thread because PATCH writes run several requests at once.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def install(self, session: Any) -> None:
        """Add the hook to ``session`` (an ``httpx.Client``) unless it is there already."""
        hooks = session.event_hooks
        if self.note not in hooks.get("response", []):
            hooks["response"] = [*hooks.get("response", []), self.note]
            session.event_hooks = hooks

    def note(self, response: httpx.Response) -> None:
        self._local.status = response.status_code

    def clear(self) -> None:
        self._local.status = None

    def last(self) -> int | None:
        return getattr(self._local, "status", None)


def is_transient_status(status: int) -> bool:
    return status in TRANSIENT_STATUSES or 500 <= status <= 599


def api_error(exc: Any, status: int | None, host: str, table: str) -> StoreError:
    """The :class:`StoreError` for postgrest-py's ``APIError`` ``exc``; ``status`` is the HTTP
    status of its response when known."""
    code = str(exc.code or "")
    message = str(exc.message or "")
    if status is None and len(code) == 3 and code.isdigit():
        status = int(code)  # no JSON body: postgrest-py puts the HTTP status in ``code``
    where = f"Supabase project {host}"
    if status == 401 or code == "401" or code in KEY_CODES or any(
            text in message for text in ("JWT", "API key")):
        return StoreError(
            f"{where} refused the key ({message}): check {KEY_VARIABLE}; it must be the "
            "service-role key, not the anon key, and not expired")
    if code == "42501" or status == 403:
        return StoreError(
            f"permission denied on table {table} of {where} ({message}): use the service-role "
            f"key ({KEY_VARIABLE}), or GRANT SELECT, INSERT, UPDATE ON {table} TO service_role")
    detail = f"{where}: {describe(exc)}"
    if code in MISSING_FUNCTION_CODES:
        return StoreError(f"{detail}; a pixelgrade function is missing: {MIGRATE}")
    if code in MISSING_TABLE_CODES:
        return StoreError(f"{detail}; check --table (and that the table is in the API's "
                          "exposed schemas), or create the table")
    if code in MISSING_COLUMN_CODES:
        return StoreError(f"{detail}; a column is missing: {MIGRATE}, or pass the right "
                          "--*-column option")
    if code in TRANSIENT_POSTGREST_CODES:
        return StoreError(f"{detail} (PostgREST cannot reach the database for now)",
                          transient=True)
    if _SQLSTATE.fullmatch(code):
        # The database itself answered: retry only what sql_errors would retry.
        transient = code.startswith("08") or code in TRANSIENT_SQLSTATES
        return StoreError(detail, transient=transient)
    if status is not None and is_transient_status(status):
        return StoreError(f"{detail} (HTTP {status}: the project is busy, rate-limited or "
                          "restarting)", transient=True)
    if status is not None and 400 <= status <= 499:
        return StoreError(f"{detail} (HTTP {status}: the request was refused; check "
                          "--table and the --*-column options)")
    return StoreError(detail)


def network_error(exc: httpx.HTTPError, host: str) -> StoreError:
    """The :class:`StoreError` for a request that got no HTTP answer."""
    if isinstance(exc, httpx.UnsupportedProtocol):
        return StoreError(f"cannot reach Supabase project {host}: {describe(exc)}; SUPABASE_URL "
                          "must start with https:// (e.g. https://your-project.supabase.co)")
    transient = isinstance(exc, httpx.TransportError)
    return StoreError(f"cannot reach Supabase project {host}: {describe(exc)}",
                      transient=transient)


def describe(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    code = getattr(exc, "code", None)
    return f"{message} ({code})" if code else str(message)
