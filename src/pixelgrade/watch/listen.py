"""The PostgreSQL side of ``watch``: a connection that LISTENs for the ids of new rows.

One dedicated autocommit connection (psycopg 3, asynchronous) runs ``LISTEN <channel>`` and
hands each notification's payload (a row id, as text) to ``deliver``. It never runs a
transaction, so it never holds back the notification queue of the server.

If the connection drops (server restart, ``pg_terminate_backend``, network), it is opened
again after 0.5 s, then 1 s, 2 s... up to ``reconnect_max``; notifications sent while it was
away are lost, so each time it is back ``on_restored`` is called (``watch`` runs a sweep). A
connection that dies silently (a network path that drops packets) is found by TCP keepalives
and by a ``SELECT 1`` every ``ping_every`` seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import psycopg
from psycopg import sql

from pixelgrade.stores.base import NotifyChannel
from pixelgrade.watch.log import WatchLog

#: Shown in ``pg_stat_activity.application_name`` for the LISTEN connection.
APPLICATION_NAME = "pixelgrade-watch-listen"
FIRST_RETRY = 0.5


class Listener:
    """``await listener.run()`` listens until cancelled. ``attempted`` is set once the first
    connection attempt has succeeded or failed; ``connected`` says whether it is listening."""

    def __init__(self, channel: NotifyChannel, deliver: Callable[[str], None], log: WatchLog,
                 *, on_restored: Callable[[], None], reconnect_max: float = 30.0,
                 ping_every: float = 30.0) -> None:
        self.channel = channel
        self.deliver = deliver
        self.log = log
        self.on_restored = on_restored
        self.reconnect_max = reconnect_max
        self.ping_every = ping_every
        self.attempted = asyncio.Event()
        self.connected = False
        self.reconnects = 0

    async def run(self) -> None:
        delay = FIRST_RETRY
        lost = False
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.channel.dsn, autocommit=True, application_name=APPLICATION_NAME,
                    connect_timeout=10, keepalives=1, keepalives_idle=30,
                    keepalives_interval=10, keepalives_count=3)
            except psycopg.Error as exc:
                self.attempted.set()
                self.log.note("listen_error",
                              f"cannot open the LISTEN connection ({_first_line(exc)}); "
                              f"trying again in {delay:g} s", retry_in=delay)
                lost = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.reconnect_max)
                continue
            try:
                async with conn:
                    await conn.execute(sql.SQL("LISTEN {}").format(
                        sql.Identifier(self.channel.channel)))
                    self.connected = True
                    self.attempted.set()
                    delay = FIRST_RETRY
                    if lost:
                        lost = False
                        self.reconnects += 1
                        self.log.note("listen_restored",
                                      f"listening again on {self.channel.channel}; sweeping "
                                      "for rows inserted meanwhile", channel=self.channel.channel)
                        self.on_restored()
                    while True:
                        async for notify in conn.notifies(timeout=self.ping_every):
                            self.deliver(notify.payload)
                        await conn.execute("SELECT 1")
            except psycopg.Error as exc:
                self.connected = False
                lost = True
                self.log.note("listen_lost",
                              f"the LISTEN connection was lost ({_first_line(exc)}); "
                              f"reconnecting in {delay:g} s", retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.reconnect_max)
            finally:
                self.connected = False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
