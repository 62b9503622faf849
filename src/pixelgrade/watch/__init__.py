"""``pixelgrade watch``: score the images that other programs insert, as they arrive.

>>> from pixelgrade.stores import open_store
>>> from pixelgrade.watch import WatchOptions, watch
>>> watch(open_store("postgresql://app@db/shop"), WatchOptions())  # doctest: +SKIP

:mod:`~pixelgrade.watch.run` is the watcher (how new rows are found, sweeps, stopping);
:mod:`~pixelgrade.watch.listen` the PostgreSQL LISTEN connection; :mod:`~pixelgrade.watch.
ledger` what is in flight and when a transient failure is tried again;
:mod:`~pixelgrade.watch.log` the lines it prints. The per-row work and the writes are the
backfill's (:mod:`pixelgrade.backfill`).
"""

from pixelgrade.watch.ledger import Ledger
from pixelgrade.watch.log import WatchLog
from pixelgrade.watch.run import Watcher, WatchOptions, WatchReport, poll_interval, watch

__all__ = ["Ledger", "WatchLog", "WatchOptions", "WatchReport", "Watcher", "poll_interval",
           "watch"]
