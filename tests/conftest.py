"""Shared fixtures: real databases.

PostgreSQL tests use the server this machine kind runs (127.0.0.1:5432, trust auth; override
with PIXELGRADE_TEST_PG, a URL to the maintenance database). Each test gets a database of its
own, created and dropped here. Without a server the tests are skipped on a laptop, and FAIL in
CI (``CI=true``): a test that needs a missing service must never pass by not running.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

PG_ADMIN_URL = os.environ.get("PIXELGRADE_TEST_PG",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def _admin_engine() -> sa.Engine:
    return sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT",
                            connect_args={"connect_timeout": 5})


@pytest.fixture(scope="session")
def pg_available() -> bool:
    try:
        with _admin_engine().connect() as conn:
            conn.execute(sa.text("select 1"))
        return True
    except sa.exc.OperationalError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required in CI but unreachable at {PG_ADMIN_URL}: {exc}")
        return False


@pytest.fixture
def pg_url(pg_available: bool) -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL database, dropped after the test."""
    if not pg_available:
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}")
    name = f"pixelgrade_test_{uuid.uuid4().hex[:12]}"
    admin = _admin_engine()
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(PG_ADMIN_URL).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> str:
    """Each test that takes ``db_url`` runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        path = os.path.join(tmp_path, "images.db")
        open(path, "w").close()
        return f"sqlite:///{path}"
    return request.getfixturevalue("pg_url")
