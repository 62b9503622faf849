"""The trigger that makes a Supabase project call ``pixelgrade hook`` for each new row: a
Database Webhook, written as SQL for the SQL editor (``pixelgrade migrate --supabase --sql
--webhook-url URL``).

Supabase's ``supabase_functions.http_request()`` is a trigger function that takes its settings
as the trigger's arguments, all text: the URL, the method, the headers (a JSON object), the
query parameters (a JSON object) and the timeout in milliseconds. For ``POST`` it sends
``{"type", "table", "schema", "record", "old_record"}`` through ``pg_net`` (asynchronously:
the insert does not wait for pixelgrade). The trigger fires ``AFTER INSERT OR UPDATE OF
<url column>``: pixelgrade's own writes of a score do not set the URL column, so they do not
call the webhook again.

The secret is in the headers argument, so it is stored in the trigger's definition (as with
every Database Webhook the dashboard makes): anyone who can read the schema's catalog can read
it. It is printed here and nowhere else.
"""

from __future__ import annotations

import json
import urllib.parse

from pixelgrade.errors import PixelgradeError
from pixelgrade.stores.base import TableSpec

#: The trigger's name (one per table; re-running the SQL replaces it).
WEBHOOK_TRIGGER = "pixelgrade_webhook"
#: Where ``pixelgrade hook`` and ``serve`` receive the webhook.
HOOK_PATH = "/api/hooks/supabase"
#: pg_net's wait for pixelgrade's answer, which comes at once (202): the work is done later.
TIMEOUT_MS = 5000
#: Shortest secret accepted.
MIN_SECRET = 16


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    """A SQL string literal (standard_conforming_strings: only quotes need doubling)."""
    return "'" + text.replace("'", "''") + "'"


def webhook_url(url: str) -> str:
    """``url`` if it is an http(s) address; a bare origin gets the hook's path."""
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PixelgradeError(f"--webhook-url {url!r} is not an http(s) URL: give the address "
                              "pixelgrade hook is reached at, e.g. --webhook-url "
                              f"https://pixelgrade.example.com{HOOK_PATH}")
    if parts.path in ("", "/"):
        parts = parts._replace(path=HOOK_PATH)
    return urllib.parse.urlunsplit(parts)


def webhook_statements(spec: TableSpec, url: str, secret: str) -> list[str]:
    """The statements that (re)create the webhook trigger on ``spec``'s table."""
    if len(secret) < MIN_SECRET:
        raise PixelgradeError(
            f"PIXELGRADE_WEBHOOK_SECRET is shorter than {MIN_SECRET} characters: use a long "
            "random one, e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(32))'")
    table = f"{_q(spec.schema or 'public')}.{_q(spec.name)}"
    headers = json.dumps({"Content-Type": "application/json",
                          "Authorization": f"Bearer {secret}"}, separators=(",", ":"))
    arguments = ", ".join(_literal(value) for value in (
        webhook_url(url), "POST", headers, "{}", str(TIMEOUT_MS)))
    trigger = _q(WEBHOOK_TRIGGER)
    return [
        f"DROP TRIGGER IF EXISTS {trigger} ON {table}",
        f"CREATE TRIGGER {trigger}\n"
        f"    AFTER INSERT OR UPDATE OF {_q(spec.url_column)} ON {table}\n"
        "    FOR EACH ROW\n"
        f"    EXECUTE FUNCTION supabase_functions.http_request({arguments})",
    ]
