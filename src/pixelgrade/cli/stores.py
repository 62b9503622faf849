"""Opening the table a command names, and the folders and buckets its images are read from."""

from __future__ import annotations

from pathlib import Path

from pixelgrade.errors import PixelgradeError
from pixelgrade.sources.storage import StorageBucket
from pixelgrade.stores import (
    SqlStore,
    Store,
    SupabaseStore,
    TableSpec,
    open_store,
    resolve_database_url,
    supabase_settings,
)


def table_spec(table: str, id_column: str, url_column: str, score_column: str) -> TableSpec:
    return TableSpec(table=table, id_column=id_column, url_column=url_column,
                     score_column=score_column)


def open_table(db: str | None, table: str, id_column: str, url_column: str,
               score_column: str) -> SqlStore | SupabaseStore:
    """The store ``--db`` (or the environment) names, on the table the options describe."""
    return open_store(resolve_database_url(db),
                      table_spec(table, id_column, url_column, score_column))


def sqlite_folder(store: Store) -> Path | None:
    """The folder of a SQLite database file (None for other stores)."""
    database = getattr(getattr(store, "url", None), "database", None)
    if store.dialect_name == "sqlite" and database:
        return Path(database).resolve().parent
    return None


def default_root(store: Store, root: Path | None) -> Path:
    """--root, else the SQLite file's folder, else the working directory: local paths in the
    table are read only inside it."""
    if root is not None:
        return root
    return sqlite_folder(store) or Path.cwd()


def storage_bucket(bucket: str | None, public: bool) -> StorageBucket | None:
    """The Supabase Storage bucket images are read from (settings: SUPABASE_URL and, for a
    private bucket, SUPABASE_SERVICE_ROLE_KEY)."""
    if bucket is None:
        if public:
            raise PixelgradeError("--public-bucket needs --bucket NAME")
        return None
    url, key = supabase_settings()
    return StorageBucket(url, bucket, public=public, key=key)
