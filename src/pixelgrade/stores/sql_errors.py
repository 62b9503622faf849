"""Which database errors are worth retrying, and what to tell the user about the others.

A backfill runs for hours; over that time the connection can be cut (a proxy, a failover,
``pg_terminate_backend``), the server can restart, a transaction can lose a serialization
race. Those errors are *transient*: the same statement on a fresh connection a moment later
may succeed, and since every write is guarded (``AND quality_score IS NULL``) repeating one is
harmless. Others are *permanent*: a column dropped, a permission revoked, a read-only replica,
a full disk; retrying only delays the message, which must say what to do.

PostgreSQL errors are sorted by SQLSTATE (PostgreSQL manual, Appendix A "PostgreSQL Error
Codes"): class 08 (connection exception), 40001/40P01 (serialization failure, deadlock),
55P03 (lock not available), 57P01-57P03 (admin or crash shutdown, cannot connect now), 53300
(too many connections), 53200 (out of memory) are transient. A psycopg error without a
SQLSTATE is raised by the client when the connection failed or broke, so it is transient too,
as is any error SQLAlchemy reports with ``connection_invalidated``. SQLite errors are sorted by
their primary result code (https://sqlite.org/rescode.html): SQLITE_BUSY, SQLITE_LOCKED,
SQLITE_PROTOCOL and SQLITE_IOERR are transient.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "55P03", "57P01", "57P02", "57P03",
                                 "53300", "53200"})
SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY, SQLITE_IOERR, SQLITE_FULL, SQLITE_PROTOCOL = (
    5, 6, 8, 10, 13, 15)
TRANSIENT_SQLITE_CODES = frozenset({SQLITE_BUSY, SQLITE_LOCKED, SQLITE_IOERR, SQLITE_PROTOCOL})


def is_transient(exc: BaseException) -> bool:
    """True when the same call may succeed if made again a moment later (module docstring)."""
    if isinstance(exc, sa.exc.TimeoutError):  # no pooled connection came free in time
        return True
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    original = getattr(exc, "orig", None)
    sqlstate = getattr(original, "sqlstate", None)
    if sqlstate:
        return sqlstate.startswith("08") or sqlstate in TRANSIENT_SQLSTATES
    code = getattr(original, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in TRANSIENT_SQLITE_CODES
    # psycopg raises OperationalError without a SQLSTATE when it cannot connect or the server
    # went away mid-statement.
    return (isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError)
            and type(original).__module__.startswith("psycopg"))


def advice(exc: BaseException, table: str, user: str | None) -> str:
    """What to do about a permanent error, or "" when there is nothing specific to say."""
    original = getattr(exc, "orig", None)
    sqlstate = getattr(original, "sqlstate", None) or ""
    code = (getattr(original, "sqlite_errorcode", None) or 0) & 0xFF
    text = str(original or exc).lower()
    if sqlstate == "42703" or "no such column" in text:
        return (f"a column of table {table} is missing (changed while the run went on?): add "
                "it with `pixelgrade migrate`, or pass the right --*-column option")
    if sqlstate == "42P01" or "no such table" in text:
        return f"table {table} is gone: check --table, or recreate it"
    if sqlstate == "42501":
        who = user or "the user in --db"
        return f"{who} may not read or update {table}: GRANT SELECT, UPDATE ON {table} TO {who}"
    if sqlstate == "25006":
        return "the server is read-only (a replica?): point --db at the primary"
    if sqlstate == "53100" or code == SQLITE_FULL:
        return "the database's disk is full: free some space"
    if code == SQLITE_READONLY:
        return "the SQLite file or its folder is read-only for this user: fix its permissions"
    return ""


def describe_failure(exc: SQLAlchemyError, first_line: str, table: str,
                     user: str | None) -> str:
    """``first_line`` plus what kind of failure it is and, for a permanent one, what to do."""
    if is_transient(exc):
        return f"{first_line} (the connection was lost, or the server is down, busy or restarting)"
    hint = advice(exc, table, user)
    return f"{first_line}; {hint}" if hint else first_line
