"""Stores: the user's images table in SQLite (the embedded default), PostgreSQL or Supabase.

>>> from pixelgrade.stores import open_store, TableSpec
>>> store = open_store("sqlite:///pixelgrade.db", TableSpec(table="images"))  # doctest: +SKIP

Every store implements :class:`pixelgrade.stores.base.Store`; the backfill engine, ``verify``
and the gallery use nothing else.
"""

from __future__ import annotations

from pathlib import Path

from pixelgrade.envvars import read_variable
from pixelgrade.stores.base import (
    Capabilities,
    NotifyChannel,
    Outcome,
    Row,
    Selection,
    Store,
    StoreStats,
    TableSpec,
)
from pixelgrade.stores.sql import SqlStore, database_url, key_to_json
from pixelgrade.stores.supabase import SupabaseStore, supabase_configured, supabase_settings
from pixelgrade.stores.urls import without_password

__all__ = [
    "DEFAULT_DATABASE_URL",
    "SUPABASE",
    "Capabilities",
    "NotifyChannel",
    "Outcome",
    "Row",
    "Selection",
    "SqlStore",
    "Store",
    "StoreStats",
    "SupabaseStore",
    "TableSpec",
    "configured_database",
    "database_url",
    "key_to_json",
    "open_store",
    "resolve_database_url",
    "supabase_settings",
    "without_password",
]

#: The embedded default: a SQLite file in the working directory.
DEFAULT_DATABASE_URL = "sqlite:///pixelgrade.db"


#: ``--db`` value that selects the Supabase store (settings from SUPABASE_URL and
#: SUPABASE_SERVICE_ROLE_KEY).
SUPABASE = "supabase"


def resolve_database_url(db: str | None, env_file: Path | None = None) -> str:
    """``--db`` if given, else what the environment configures (:func:`configured_database`),
    else the embedded SQLite default."""
    return db or configured_database(env_file) or DEFAULT_DATABASE_URL


def configured_database(env_file: Path | None = None) -> str | None:
    """``DATABASE_URL`` (environment, then ``./.env``), else ``supabase`` when
    ``SUPABASE_URL`` and ``SUPABASE_SERVICE_ROLE_KEY`` are set (environment or ``./.env``),
    else None."""
    value = read_variable("DATABASE_URL", env_file)
    if value:
        return value
    if supabase_configured(env_file):
        return SUPABASE
    return None


def open_store(db: str, spec: TableSpec | None = None, *, must_exist: bool = True,
               inspect: bool = True) -> SqlStore | SupabaseStore:
    """Open the store that ``db`` names (see :func:`resolve_database_url`)."""
    if db == SUPABASE or db.startswith("supabase:"):
        url, key = supabase_settings()
        return SupabaseStore(url, key, spec)
    return SqlStore(db, spec, must_exist=must_exist, inspect=inspect)
