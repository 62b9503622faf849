"""A PostgreSQL advisory lock that outlives the session holding it.

A session-level advisory lock (``pg_try_advisory_lock``, PostgreSQL manual 13.3.5) lasts as
long as the session that took it. When that session is cut (``pg_terminate_backend``, a
server restart, a failover, a proxy timing out an idle connection) the lock silently goes with
it, and a second backfill could start on the same table while the first one, having
reconnected, goes on. So the holder checks its session before each batch (:meth:`keep`) and,
if it was cut, takes the lock again on a fresh session; if someone else took it meanwhile, the
holder must stop.

A session given up on is closed for good (``invalidate``), never handed back to the connection
pool: if it were still alive it would keep the lock, and the holder would find its own lock
"taken by someone else". The server may need a moment to notice a closed session, so taking
the lock again is tried a few times before concluding that another session holds it.
"""

from __future__ import annotations

import contextlib
import threading
import time

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

#: Tries at taking the lock again after its session was cut, and the pause between them.
RETAKE_TRIES = 4
RETAKE_PAUSE = 0.25


class AdvisoryLock:
    """Lock ``key`` on ``engine``'s server. Not reentrant; safe to use from several threads."""

    def __init__(self, engine: sa.Engine, key: int) -> None:
        self.engine = engine
        self.key = key
        self._conn: sa.Connection | None = None
        self._mutex = threading.Lock()

    def acquire(self) -> bool:
        """Take the lock on a session of its own; False if another session holds it."""
        with self._mutex:
            return self._take()

    def keep(self) -> bool:
        """True if the lock is still ours, taken again if its session was cut; False if another
        session took it meanwhile. Raises SQLAlchemyError if the server cannot be reached."""
        with self._mutex:
            conn = self._conn
            if conn is not None and not conn.invalidated:
                try:
                    conn.exec_driver_sql("SELECT 1")
                    conn.commit()
                    return True
                except SQLAlchemyError:
                    pass  # the session is gone, and the lock with it
            self._drop()
            for attempt in range(RETAKE_TRIES):
                if attempt:
                    time.sleep(RETAKE_PAUSE)
                if self._take():
                    return True
            return False

    def release(self) -> None:
        with self._mutex:
            conn = self._conn
            if conn is not None and not conn.invalidated:
                try:
                    conn.execute(sa.select(sa.func.pg_advisory_unlock(self.key)))
                    conn.commit()
                except SQLAlchemyError:
                    # A session cut meanwhile took its lock with it: nothing to release.
                    self._drop()
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _take(self) -> bool:
        conn = self.engine.connect()
        try:
            taken = bool(conn.execute(sa.select(sa.func.pg_try_advisory_lock(self.key)))
                         .scalar_one())
            conn.commit()
        except BaseException:
            conn.close()
            raise
        if not taken:
            conn.close()
            return False
        self._conn = conn
        return True

    def _drop(self) -> None:
        """Close the lock's session for good (see the module docstring)."""
        if self._conn is not None:
            with contextlib.suppress(SQLAlchemyError):
                self._conn.invalidate()
                self._conn.close()
            self._conn = None
