"""Whether a scoring service can do its work: the answer of ``GET /healthz``.

Two things are checked, each with a time limit so that a hung database answers 503 in about
``timeout`` seconds instead of holding the request (and the load balancer's probe) open:

* **the database**: ``store.ping()`` (``SELECT 1 FROM <table> LIMIT 0`` on SQLite and
  PostgreSQL, a request for no rows on Supabase);
* **the workers**: every probe registered with :meth:`HealthCheck.register`, e.g. the
  watcher's (:meth:`pixelgrade.watch.Watcher.liveness`: its event loop answers and it is not
  stopping). A probe returns None when all is well, else what is wrong in words.

Each check runs in a daemon thread of its own. A check still running from an earlier request
(a connection attempt that hangs) is not started again: the answer says how long it has been
waiting, so repeated probes of a hung database never pile up threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, Protocol

from pixelgrade import __version__
from pixelgrade.service.logs import redact

#: A liveness probe: None when alive, else what is wrong (a sentence).
Probe = Callable[[], str | None]
#: Default time limit of each check, seconds.
TIMEOUT = 3.0


class Pingable(Protocol):
    def ping(self) -> None: ...


@dataclass(frozen=True)
class Health:
    """One answer: ``ok`` overall, and each check's result (None: fine; else what is
    wrong)."""

    checks: dict[str, str | None]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(problem is None for problem in self.checks.values())

    @property
    def status_code(self) -> int:
        return 200 if self.ok else 503

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "status": "ok" if self.ok else "failing",
            "checks": {name: problem or "ok" for name, problem in self.checks.items()},
            "version": __version__, "seconds": round(self.seconds, 3)}
        if not self.ok:
            body["problems"] = [f"{name}: {problem}" for name, problem in self.checks.items()
                                if problem is not None]
        return body


@dataclass
class _Pending:
    future: Future[str | None]
    started: float


@dataclass
class HealthCheck:
    """The database (``store``, anything with ``ping()``; None, or a store without one: not
    checked) and the registered liveness probes, each within ``timeout`` seconds."""

    store: Pingable | Any = None
    timeout: float = TIMEOUT
    _probes: dict[str, Probe] = field(default_factory=dict)
    _pending: dict[str, _Pending] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def register(self, name: str, probe: Probe) -> None:
        """Add (or replace) the liveness probe ``name``, e.g. ``"watch"``."""
        with self._lock:
            self._probes[name] = probe

    def unregister(self, name: str) -> None:
        with self._lock:
            self._probes.pop(name, None)

    def check(self) -> Health:
        """Run every check at once; none takes longer than ``timeout`` seconds to answer."""
        started = time.monotonic()
        with self._lock:
            probes: dict[str, Probe] = {}
            if callable(getattr(self.store, "ping", None)):  # a store without: not checked
                probes["database"] = self._ping
            probes.update(self._probes)
            futures = {name: self._start(name, probe) for name, probe in probes.items()}
        deadline = started + self.timeout
        checks: dict[str, str | None] = {}
        for name, (future, since) in futures.items():
            try:
                checks[name] = future.result(timeout=max(0.0, deadline - time.monotonic()))
            except FutureTimeout:
                waited = time.monotonic() - since
                checks[name] = (f"no answer within {waited:.1f} s" if name != "database" else
                                f"the database has not answered for {waited:.1f} s")
            except Exception as exc:  # a probe that raised: its message says what
                checks[name] = redact(str(exc) or type(exc).__name__)
        return Health(checks, time.monotonic() - started)

    def _ping(self) -> str | None:
        assert self.store is not None
        try:
            self.store.ping()
        except Exception as exc:
            return f"cannot be reached: {redact(str(exc) or type(exc).__name__)}"
        return None

    def _start(self, name: str, probe: Probe) -> tuple[Future[str | None], float]:
        """The check ``name`` running in a thread: the one still running from an earlier
        request, else a new one."""
        pending = self._pending.get(name)
        if pending is not None and not pending.future.done():
            return pending.future, pending.started
        future: Future[str | None] = Future()

        def run() -> None:
            try:
                future.set_result(probe())
            except BaseException as exc:
                future.set_exception(exc)

        now = time.monotonic()
        self._pending[name] = _Pending(future, now)
        threading.Thread(target=run, name=f"pixelgrade-health-{name}", daemon=True).start()
        return future, now
