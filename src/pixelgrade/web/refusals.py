"""Previews the SSRF guard refuses, said once for the whole gallery instead of a silent
"no preview" on every card.

Rows whose URLs point at a loopback or private address (a MinIO on ``127.0.0.1:9000``, a file
server on ``10.0.0.5``) are refused by :mod:`pixelgrade.sources.netguard` unless ``serve`` is
started with ``--allow-host`` (or ``--allow-private-network``). Each refused host is recorded
here, with its address and why it is refused, in two ways:

* at start, :func:`sample_refusals` checks the hosts of a sample of rows (the gallery's first
  page) against the guard, without downloading anything, so ``serve`` can print the reason
  and the flag, and the first page already shows the notice;
* while serving, the thumbnail reader records every refusal the guard makes
  (:meth:`PreviewRefusals.record_error`), so hosts outside the sample are noticed too, from
  the next page load on.

:meth:`PreviewRefusals.notice` is the sentence the gallery shows and ``serve`` prints.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass

from pixelgrade.backfill.images import Locator
from pixelgrade.errors import FetchError
from pixelgrade.sources.http import is_url
from pixelgrade.sources.netguard import ForbiddenAddressError, NetGuard
from pixelgrade.stores.base import GalleryStore, ImageQuery, Row

logger = logging.getLogger(__name__)

#: Hosts named in one notice; more are counted, not listed.
MAX_HOSTS = 4
#: Rows whose hosts are checked at start, and the longest wait for their name lookups.
SAMPLE_ROWS = 100
SAMPLE_HOSTS = 8
SAMPLE_SECONDS = 3.0


@dataclass(frozen=True)
class Refusal:
    """One host whose images the guard refuses: ``host`` as in the URL, the ``address`` it is
    (or resolves to) and its ``category`` ("loopback", "private"...)."""

    host: str
    address: str
    category: str

    @classmethod
    def from_error(cls, exc: ForbiddenAddressError) -> Refusal:
        return cls(exc.host.strip("[]"), str(exc.address), exc.category)


def refusal_in(exc: BaseException) -> Refusal | None:
    """The guard's refusal behind ``exc`` (a :class:`FetchError` keeps it as its cause)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ForbiddenAddressError):
            return Refusal.from_error(current)
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


class PreviewRefusals:
    """The hosts refused so far, in the order they were met (one instance per app)."""

    def __init__(self, found: Iterable[Refusal] = ()) -> None:
        self._lock = threading.Lock()
        self._refusals: dict[str, Refusal] = {}
        for refusal in found:
            self.record(refusal)

    def record(self, refusal: Refusal) -> bool:
        """Keep ``refusal``; True when its host is new."""
        with self._lock:
            if refusal.host in self._refusals:
                return False
            self._refusals[refusal.host] = refusal
            return True

    def record_error(self, exc: BaseException) -> None:
        """Keep the refusal behind ``exc``, if it is one; a new host is also logged (once)."""
        refusal = refusal_in(exc)
        if refusal is not None and self.record(refusal):
            logger.warning("pixelgrade serve: %s", self.notice())

    @property
    def refusals(self) -> list[Refusal]:
        with self._lock:
            return list(self._refusals.values())

    def notice(self) -> str | None:
        """What to tell the operator, or None when nothing was refused."""
        refusals = self.refusals
        if not refusals:
            return None
        shown = refusals[:MAX_HOSTS]
        hosts = _and([_described(r) for r in shown])
        if len(refusals) > len(shown):
            hosts += f" and {len(refusals) - len(shown)} more hosts"
        flags = " ".join(f"--allow-host {r.host}" for r in shown)
        return (f"Previews of images on {hosts} are refused by the network guard (rows may "
                f"not make the server reach its own network); restart serve with {flags} "
                "to show them, or with --allow-private-network for every private address.")


def _described(refusal: Refusal) -> str:
    if refusal.host == refusal.address:
        return f"{refusal.host} ({_article(refusal.category)} {refusal.category} address)"
    return (f"{refusal.host} ({refusal.address}, {_article(refusal.category)} "
            f"{refusal.category} address)")


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def sample_refusals(store: GalleryStore, locator: Locator, guard: NetGuard, *,
                    rows: int = SAMPLE_ROWS, hosts: int = SAMPLE_HOSTS,
                    seconds: float = SAMPLE_SECONDS) -> list[Refusal]:
    """The refusals the guard would make for the first ``rows`` rows of the gallery (its
    default order), checking at most ``hosts`` distinct hosts; name lookups that take longer
    than ``seconds`` in all are left out (the reader still records them when it meets them).
    Nothing is downloaded."""
    page = store.list_images(ImageQuery(limit=rows))
    targets: dict[tuple[str, int], None] = {}
    for record in page.items:
        try:
            location = locator(Row(record.id, record.location))
        except FetchError:
            continue
        target = _host_and_port(location)
        if target is not None and not guard.passes_unchecked(*target):
            targets.setdefault(target)
            if len(targets) >= hosts:
                break
    return _check(guard, list(targets), seconds)


def _host_and_port(location: str) -> tuple[str, int] | None:
    if not is_url(location):
        return None
    try:
        parts = urllib.parse.urlsplit(location)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not host:
        return None
    return host, port or (443 if parts.scheme.lower() == "https" else 80)


def _check(guard: NetGuard, targets: list[tuple[str, int]], seconds: float) -> list[Refusal]:
    """Each target through ``guard.resolve``, in threads, for at most ``seconds``."""
    found: dict[tuple[str, int], Refusal] = {}

    def check(target: tuple[str, int]) -> None:
        try:
            guard.resolve(*target)
        except ForbiddenAddressError as exc:
            found[target] = Refusal.from_error(exc)
        except Exception:  # no such name, a resolver failure: not the guard's refusal
            return

    threads = [threading.Thread(target=check, args=(target,), daemon=True,
                                name="pixelgrade-guard-sample") for target in targets]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + seconds
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [found[target] for target in targets if target in found]
