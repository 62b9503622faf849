"""SSRF guard: URLs from the database may only reach the public internet.

Image URLs come from rows that other people (app users, an upload form, a compromised account)
can write. Without a guard, a row holding ``http://169.254.169.254/latest/meta-data/`` or
``http://localhost:5432/`` makes pixelgrade reach into the machine's own network on the
attacker's behalf (server-side request forgery, OWASP SSRF Prevention Cheat Sheet).

The rule: an address is allowed only when it is globally reachable, as defined by the IANA
IPv4 and IPv6 Special-Purpose Address Registries (RFC 6890, updated by RFC 8190), which is what
:attr:`ipaddress.IPv4Address.is_global` encodes. That refuses, among others:

* loopback ``127.0.0.0/8`` and ``::1`` (RFC 1122, RFC 4291), unspecified ``0.0.0.0``/``::``;
* private ``10/8``, ``172.16/12``, ``192.168/16`` (RFC 1918) and unique-local ``fc00::/7``
  (RFC 4193);
* link-local ``169.254.0.0/16`` (RFC 3927: cloud metadata at 169.254.169.254) and
  ``fe80::/10``;
* shared address space / carrier-grade NAT ``100.64.0.0/10`` (RFC 6598), documentation,
  benchmarking and reserved ranges; and multicast ``224.0.0.0/4``, ``ff00::/8`` (RFC 5771,
  RFC 4291), which ``is_global`` lets through, so it is checked on its own.

IPv6 addresses that carry an IPv4 address (IPv4-mapped ``::ffff:0:0/96`` of RFC 4291, the NAT64
prefix ``64:ff9b::/96`` of RFC 6052, 6to4 ``2002::/16`` of RFC 3056, Teredo ``2001::/32`` of
RFC 4380) are judged by the IPv4 address inside. Odd spellings of IPv4 (``2130706433``,
``0x7f.1``, ``0177.0.0.1``, ``127.1``: the forms ``inet_aton`` accepts) are read the way the
system resolver reads them.

DNS rebinding (a name that resolves to a public address when checked and to 127.0.0.1 when
connected) is defeated by checking at connect time: the guarded network backend resolves the
name once, refuses if *any* address is forbidden, and opens the socket to the address it
checked. TLS still verifies the certificate against the host name. Because every connection of
the HTTP client goes through it, every redirect hop and every pooled connection is covered.

Opting in: ``allow_private_network`` turns the guard off; ``allowed_hosts`` lists host names
(reached whatever they resolve to), addresses or networks in CIDR form (allowed as peers);
``trusted_origins`` are the ``scheme://host[:port]`` origins the operator configured
(``--url-template``, the Supabase project), trusted exactly and only as such.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: ``(host, port) -> addresses`` as strings; the default asks the system (getaddrinfo).
Resolver = Callable[[str, int], list[str]]

ADVICE = ("pixelgrade refuses URLs on private networks unless you pass --allow-host HOST "
          "(or --allow-private-network)")

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")  # RFC 6598, carrier-grade NAT
_LEGACY_IPV4 = re.compile(r"(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}\.?", re.I)


class ForbiddenAddressError(Exception):
    """A connection was refused because the peer is not a public address."""

    def __init__(self, host: str, address: IPAddress, category: str) -> None:
        self.host = host
        self.address = address
        self.category = category
        inner = embedded_ipv4(address)
        shown = f"{address} (IPv4 {inner})" if inner is not None else str(address)
        where = (f"its host is {shown}" if literal_address(host) is not None
                 else f"its host {host} resolves to {shown}")
        super().__init__(f"{where}, {_article(category)} {category} address")


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def literal_address(host: str) -> IPAddress | None:
    """The address ``host`` spells, if it is an IP literal in any form a resolver accepts.

    ``[::1]`` (brackets as in URLs), dotted quads, and the legacy IPv4 forms of ``inet_aton``
    (decimal ``2130706433``, hex ``0x7f.1``, octal ``0177.0.0.1``, short ``127.1``). None for
    a host name.
    """
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if _LEGACY_IPV4.fullmatch(text):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(text.rstrip(".")))
        except OSError:
            return None
    return None


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, NAT64, 6to4, Teredo), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # the client's address (the server is public by design)
    return None


def forbidden_category(address: IPAddress) -> str | None:
    """Why ``address`` must not be reached (``"loopback"``, ``"private"``...), or None when it
    is a public unicast address."""
    inner = embedded_ipv4(address)
    if inner is not None:
        category = forbidden_category(inner)
        return f"IPv4-in-IPv6 {category}" if category else None
    if address.is_loopback:
        return "loopback"
    if address.is_unspecified:
        return "unspecified"
    if address.is_link_local:
        return "link-local (cloud metadata)" if isinstance(
            address, ipaddress.IPv4Address) else "link-local"
    if address.is_multicast:
        return "multicast"
    if isinstance(address, ipaddress.IPv4Address) and address in _SHARED:
        return "shared (carrier-grade NAT)"
    if address.is_private:
        return "private"
    if address.is_reserved:
        return "reserved"
    if not address.is_global:
        return "non-global"
    return None


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (getaddrinfo, TCP), in the system's order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def origin_of(url: str) -> str | None:
    """``scheme://host:port`` of an http(s) URL or URL template, None for anything else
    (including a template whose host is itself a placeholder)."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").rstrip(".")
    if scheme not in ("http", "https") or not host or "{" in host or "}" in host:
        return None
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port or (443 if scheme == 'https' else 80)}"


def _origin_key(origin: str) -> tuple[str, int]:
    normal = origin_of(origin)
    if normal is None:
        raise ValueError(f"not an http(s) origin: {origin!r}")
    parts = urllib.parse.urlsplit(normal)
    return str(parts.hostname), int(parts.port or 0)


@dataclass(frozen=True)
class NetGuard:
    """Decides which peers the HTTP client may connect to (see the module docstring)."""

    allow_private_network: bool = False
    allowed_hosts: frozenset[str] = frozenset()
    trusted_origins: frozenset[str] = frozenset()
    resolver: Resolver = system_resolver
    _names: frozenset[str] = field(init=False, repr=False, compare=False)
    _networks: tuple[IPNetwork, ...] = field(init=False, repr=False, compare=False)
    _origins: frozenset[tuple[str, int]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in self.allowed_hosts:
            text = entry.strip().lower().rstrip(".")
            if text.startswith("[") and text.endswith("]"):
                text = text[1:-1]
            try:
                networks.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                if not text or "/" in text:
                    raise ValueError(f"--allow-host {entry!r}: give a host name, an IP "
                                     "address or a network such as 10.0.0.0/8") from None
                names.add(text)
        object.__setattr__(self, "_names", frozenset(names))
        object.__setattr__(self, "_networks", tuple(networks))
        object.__setattr__(self, "_origins",
                           frozenset(_origin_key(o) for o in self.trusted_origins))

    def passes_unchecked(self, host: str, port: int) -> bool:
        """True when connections to ``host:port`` are not checked at all."""
        key = host.lower().rstrip(".")
        return (self.allow_private_network or key in self._names
                or (key, port) in self._origins)

    def check(self, host: str, addresses: Iterable[str]) -> list[str]:
        """``addresses`` (what ``host`` resolved to), all of them checked; raises
        :class:`ForbiddenAddressError` if any one is forbidden (a name with one private address
        among public ones is a rebinding trick, not a mistake)."""
        checked = []
        for text in addresses:
            address = ipaddress.ip_address(text.split("%", 1)[0])
            category = forbidden_category(address)
            if category is not None and not any(
                    address in network for network in self._networks):
                raise ForbiddenAddressError(host, address, category)
            checked.append(text)
        if not checked:
            raise httpcore.ConnectError(f"{host} resolves to no address")
        return checked

    def resolve(self, host: str, port: int) -> list[str]:
        """The checked addresses to connect to (an IP literal is not looked up)."""
        literal = literal_address(host)
        if literal is not None:
            return self.check(host, [str(literal)])
        try:
            found = self.resolver(host, port)
        except OSError as exc:  # socket.gaierror: no such name
            raise httpcore.ConnectError(f"cannot resolve {host} ({exc})") from exc
        return self.check(host, found)


class GuardedBackend(httpcore.NetworkBackend):
    """A synchronous httpcore network backend that connects only to checked addresses."""

    def __init__(self, inner: httpcore.NetworkBackend, guard: NetGuard) -> None:
        self._inner = inner
        self._guard = guard

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        if self._guard.passes_unchecked(host, port):
            return self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        error: Exception | None = None
        for address in self._guard.resolve(host, port):
            try:
                return self._inner.connect_tcp(address, port, timeout, local_address,
                                               socket_options)
            except httpcore.ConnectError as exc:
                error = exc
        assert error is not None
        raise error

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None
                            ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not used by pixelgrade")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class AsyncGuardedBackend(httpcore.AsyncNetworkBackend):
    """The async twin of :class:`GuardedBackend`; name lookups run in a worker thread and
    count against the connect timeout."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend, guard: NetGuard) -> None:
        self._inner = inner
        self._guard = guard

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None
                          ) -> httpcore.AsyncNetworkStream:
        if self._guard.passes_unchecked(host, port):
            return await self._inner.connect_tcp(host, port, timeout, local_address,
                                                 socket_options)
        try:
            with anyio.fail_after(timeout):
                addresses = await anyio.to_thread.run_sync(
                    self._guard.resolve, host, port, abandon_on_cancel=True)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host} took over {timeout} s") from exc
        error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(address, port, timeout, local_address,
                                                     socket_options)
            except httpcore.ConnectError as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None
                                  ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not used by pixelgrade")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_transport(guard: NetGuard, **options: Any) -> httpx.HTTPTransport:
    """An httpx transport whose every connection goes through ``guard``."""
    transport = httpx.HTTPTransport(**options)
    _wrap_pool(transport, lambda inner: GuardedBackend(inner, guard))
    return transport


def async_guarded_transport(guard: NetGuard, **options: Any) -> httpx.AsyncHTTPTransport:
    """The async twin of :func:`guarded_transport`."""
    transport = httpx.AsyncHTTPTransport(**options)
    _wrap_pool(transport, lambda inner: AsyncGuardedBackend(inner, guard))
    return transport


def _wrap_pool(transport: httpx.HTTPTransport | httpx.AsyncHTTPTransport,
               wrap: Callable[[Any], Any]) -> None:
    # httpx does not expose httpcore's network_backend option: wrap the pool's backend. Fail
    # closed (an error at start, not an unguarded client) if a new httpx moves it.
    pool = getattr(transport, "_pool", None)
    if pool is None or not hasattr(pool, "_network_backend"):
        raise RuntimeError("this httpx/httpcore version hides the connection pool's network "
                           "backend, so the SSRF guard cannot be installed; install the "
                           "httpx version pinned in pyproject.toml")
    pool._network_backend = wrap(pool._network_backend)

