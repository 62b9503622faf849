"""Shared by the autoscore tests: a stand-in for Supabase's ``supabase_functions.http_request``
trigger function, and the Supabase stack's fixtures (tests/supabase/conftest.py).

The stand-in builds the payload exactly as Supabase's own function does (``jsonb_build_object(
'old_record', OLD, 'record', NEW, 'type', TG_OP, 'table', TG_TABLE_NAME, 'schema',
TG_TABLE_SCHEMA)``, see supabase/supabase docker/volumes/db/webhooks.sql) and reads its
arguments the same way (URL, method, headers JSON, params JSON, timeout in ms), but instead of
sending it with pg_net (not installed here) it records the call in ``supabase_functions.sent``;
the tests then deliver it over HTTP, as pg_net would.
"""

from __future__ import annotations

import json
import socket
from typing import Any

import sqlalchemy as sa

from tests.backfill.conftest import image_server
from tests.stores import tables
from tests.supabase.conftest import fresh_supabase, supabase_stack

__all__ = ["fresh_supabase", "image_server", "supabase_stack"]

HTTP_REQUEST_STANDIN = """
CREATE SCHEMA IF NOT EXISTS supabase_functions;
CREATE TABLE IF NOT EXISTS supabase_functions.sent (
    n bigserial PRIMARY KEY, url text, method text, headers jsonb, params jsonb,
    timeout_ms integer, payload jsonb);
TRUNCATE supabase_functions.sent;
CREATE OR REPLACE FUNCTION supabase_functions.http_request() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO supabase_functions.sent (url, method, headers, params, timeout_ms, payload)
    VALUES (TG_ARGV[0]::text, TG_ARGV[1]::text, TG_ARGV[2]::jsonb, TG_ARGV[3]::jsonb,
            TG_ARGV[4]::integer,
            jsonb_build_object('old_record', OLD, 'record', NEW, 'type', TG_OP,
                               'table', TG_TABLE_NAME, 'schema', TG_TABLE_SCHEMA));
    RETURN NEW;
END $$;
"""


def install_http_request_standin(url: str) -> None:
    with tables.connect(url) as conn:
        conn.exec_driver_sql(HTTP_REQUEST_STANDIN)


def sent(url: str) -> list[dict[str, Any]]:
    """The webhook calls the trigger made, in order."""
    with tables.connect(url) as conn:
        result = conn.execute(sa.text(
            "SELECT url, method, headers, params, timeout_ms, payload "
            "FROM supabase_functions.sent ORDER BY n")).mappings().all()
    return [{k: (json.loads(v) if isinstance(v, str) and k in ("headers", "params", "payload")
                 else v) for k, v in row.items()} for row in result]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
