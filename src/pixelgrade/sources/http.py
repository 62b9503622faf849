"""http(s) URLs: pooled async fetching for the backfill, a synchronous reader for the CLI.

Both share one set of rules, :class:`HttpPolicy`:

* **Size cap while streaming.** An announced Content-Length over ``max_bytes`` is refused before
  any of the body is read; otherwise the cap is enforced on the bytes actually received, so a
  server that lies about the length (or sends none) cannot make us hold more than ``max_bytes``
  plus one network chunk. Plain bodies are asked for (``Accept-Encoding: identity``: images are
  already compressed); a server that gzips anyway is decoded incrementally under the same cap, so
  a compression bomb is refused too.
* **Content type is ignored.** What the bytes are is decided by sniffing them
  (:mod:`pixelgrade.scoring.sniff`), never by a header.
* **Retries for transient failures only** (timeouts, lost connections, truncated bodies, 408,
  425, 429, 5xx), with exponential backoff and full jitter, or exactly the server's
  ``Retry-After`` when it sends one that is not too long. 4xx, invalid URLs, redirect loops and
  oversized images fail at once.
* **Public addresses only** (SSRF guard, :mod:`pixelgrade.sources.netguard`): every connection,
  including each redirect hop, is checked at connect time, so a row cannot make pixelgrade
  reach loopback, private, link-local (cloud metadata) or multicast addresses unless the policy
  opts in (``allow_private_network``, ``allowed_hosts``, ``trusted_origins``). A refusal is a
  permanent failure of kind ``forbidden_address``.
* **Errors that explain.** :class:`FetchError` carries ``kind`` (``http_404``, ``timeout``,
  ``truncated``...), ``transient`` and ``attempts``; its message names the URL without
  credentials or query values (see :func:`redact_url`) and says what to do.

``HttpFetcher`` (async, one per backfill run) and :func:`read_url` (sync, one URL) differ only in
how they wait.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import importlib.util
import random
import re
import time
import urllib.parse
import zlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from types import TracebackType

import httpx

from pixelgrade.errors import FetchError, ImageTooLargeError
from pixelgrade.sources.netguard import (
    ADVICE,
    ForbiddenAddressError,
    NetGuard,
    Resolver,
    async_guarded_transport,
    guarded_transport,
    origin_of,
    system_resolver,
)

USER_AGENT = "pixelgrade (image quality scoring; +https://pypi.org/project/pixelgrade/)"

#: Statuses worth trying again: the request may well succeed later.
TRANSIENT_STATUSES = frozenset({408, 425, 429})

_HOST_CHARS = re.compile(r"[A-Za-z0-9._:\-]+")  # after IDNA encoding; ':' for IPv6
_REACH = "check that the URL is reachable from this machine"
_SLOW_DOWN = "the server asked to slow down: lower --rate or --concurrency"


@dataclass(frozen=True)
class HttpPolicy:
    """How URLs are fetched: limits, timeouts, retries. Times are in seconds."""

    #: Largest body accepted; more is refused with :class:`ImageTooLargeError`.
    max_bytes: int = 50 * 1024 * 1024
    #: To open the TCP (and TLS) connection.
    connect_timeout: float = 10.0
    #: Longest wait for the next bytes (headers or body): a stalled server fails after this.
    read_timeout: float = 30.0
    #: Wall-clock cap on one attempt (connect, headers and whole body), so a server trickling
    #: bytes just fast enough to dodge ``read_timeout`` still ends. Waits between attempts are
    #: not counted.
    total_timeout: float = 120.0
    #: Extra attempts after the first, for transient failures only.
    retries: int = 3
    #: Backoff before retry *n* (1-based) is uniform in ``[0, min(backoff_max,
    #: backoff_base * 2 ** (n - 1))]`` ("full jitter"), unless the server sent Retry-After.
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    #: A Retry-After longer than this is not waited for: the failure is returned (transient)
    #: so the row is left for a later run instead of holding a worker.
    max_retry_after: float = 60.0
    max_redirects: int = 5
    #: Use HTTP/2 when the server offers it (and the ``h2`` package is installed).
    http2: bool = True
    user_agent: str = USER_AGENT
    #: Reach loopback, private and link-local addresses too (``--allow-private-network``):
    #: only for a network you trust, e.g. tests against a local server.
    allow_private_network: bool = False
    #: Host names reached whatever they resolve to, and IP addresses or CIDR networks allowed
    #: as peers (``--allow-host``).
    allowed_hosts: frozenset[str] = frozenset()
    #: ``scheme://host[:port]`` origins the operator configured (the ``--url-template``
    #: origin, the Supabase project): trusted exactly, see :meth:`trusting`.
    trusted_origins: frozenset[str] = frozenset()
    #: Name lookups for the guard (``(host, port) -> addresses``); replaceable in tests.
    resolver: Resolver = field(default=system_resolver, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "allowed_hosts", frozenset(self.allowed_hosts))
        object.__setattr__(self, "trusted_origins", frozenset(self.trusted_origins))

    def trusting(self, *locations: str | None) -> HttpPolicy:
        """This policy, also trusting the origin of each http(s) URL or URL template given
        (others, and None, are ignored): what the operator configured is not a row's say."""
        origins = {o for o in (origin_of(x) for x in locations if x) if o is not None}
        return dataclasses.replace(self, trusted_origins=self.trusted_origins | origins)

    def guard(self) -> NetGuard:
        """The SSRF guard these settings describe (raises ValueError for a bad allowed host)."""
        return NetGuard(self.allow_private_network, self.allowed_hosts, self.trusted_origins,
                        self.resolver)


def is_url(location: str) -> bool:
    """True for http:// and https:// locations (case-insensitive scheme)."""
    return location.lower().startswith(("http://", "https://"))


def redact_url(url: str) -> str:
    """``url`` fit for messages and logs: ``scheme://host[:port]/path``, plus ``?…`` if it had a
    query string. User name, password, query values (often tokens or signatures) and fragment
    are dropped.

    >>> redact_url("https://user:secret@cdn.example.com/a/b.jpg?sig=abc#x")
    'https://cdn.example.com/a/b.jpg?…'
    """
    text = url.strip()
    try:
        parts = urllib.parse.urlsplit(text)
    except ValueError:  # e.g. an unbalanced IPv6 bracket: keep what cannot hold a credential
        scheme, sep, rest = text.partition("://")
        host_and_path = rest.split("?", 1)[0].split("#", 1)[0]
        authority, slash, path = host_and_path.partition("/")
        return f"{scheme}{sep}{authority.rpartition('@')[2]}{slash}{path}" + (
            "?…" if "?" in rest else "")
    host = parts.netloc.rpartition("@")[2]
    shown = f"{parts.scheme.lower()}://{host}{parts.path}" if parts.scheme else (
        host + parts.path)
    return shown + ("?…" if parts.query else "")


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header value, in either form it may take.

    Delta-seconds (``"120"``) or an HTTP-date (``"Wed, 21 Oct 2015 07:28:00 GMT"``, counted
    from ``now``, default the current time; a date in the past means 0). None when the header is
    absent or unreadable.
    """
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(min(int(value), 10**9))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def backoff_delay(policy: HttpPolicy, retry: int, rng: random.Random) -> float:
    """Full-jitter exponential backoff before retry number ``retry`` (1 for the first retry)."""
    ceiling = min(policy.backoff_max, policy.backoff_base * 2 ** (retry - 1))
    return rng.uniform(0.0, max(0.0, ceiling))


class HttpFetcher:
    """Async, pooled HTTP(S) fetcher; make one per backfill run and share it between tasks.

    ::

        async with HttpFetcher(HttpPolicy(max_bytes=20_000_000), concurrency=32) as fetcher:
            data = await fetcher.fetch(url)

    ``concurrency`` bounds the requests in flight (and the pool's connections); a task waiting
    between retries does not hold a slot. ``sleep`` and ``rng`` are the waiting function and the
    jitter source, injectable so tests and simulations need not wait. ``pace``, when given, is
    awaited before every attempt, once a slot is held, so that the requests themselves (retries
    included) are spaced as it says: the backfill passes its ``--rate`` limiter. (Pacing rows
    before they queue for a slot let slow or 429 answers bunch the queued requests together.)
    """

    def __init__(
        self,
        policy: HttpPolicy | None = None,
        *,
        concurrency: int = 32,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        rng: random.Random | None = None,
        origin_headers: Mapping[str, Mapping[str, str]] | None = None,
        pace: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        self.policy = policy or HttpPolicy()
        self.concurrency = concurrency
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._pace = pace
        self._slots = asyncio.Semaphore(concurrency)
        self._client = httpx.AsyncClient(
            transport=async_guarded_transport(self.policy.guard(),
                                              **_transport_options(self.policy, concurrency)),
            **_client_options(self.policy))
        # Credentials for one origin (e.g. a Supabase project's Storage): sent only to that
        # scheme://host:port, and taken off again when a redirect leaves it.
        self._origin_headers = {_origin(httpx.URL(origin)): dict(headers)
                                for origin, headers in (origin_headers or {}).items()}
        self._credential_names = {name.lower() for headers in self._origin_headers.values()
                                  for name in headers}

    def _with_credentials(self, request: httpx.Request) -> httpx.Request:
        for name in self._credential_names:
            request.headers.pop(name, None)
        request.headers.update(self._origin_headers.get(_origin(request.url), {}))
        return request

    async def __aenter__(self) -> HttpFetcher:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._client.aclose()

    async def fetch(self, url: str) -> bytes:
        """The body of ``url``, at most ``policy.max_bytes`` of it, retrying transient failures.

        Raises :class:`FetchError` (with ``kind``, ``transient``, ``attempts``) or
        :class:`ImageTooLargeError` (never retried).
        """
        _check_url(url)
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self._slots:
                    if self._pace is not None:
                        await self._pace()
                    async with asyncio.timeout(self.policy.total_timeout):
                        return await self._attempt(url)
            except _Failure as failure:
                error = failure
            except TimeoutError as exc:  # total_timeout, from asyncio.timeout
                error = _total_timeout_failure(self.policy)
                error.__cause__ = exc
            delay = _retry_delay(self.policy, error, attempt, self._rng)
            if delay is None:
                raise error.to_error(url, attempt, self.policy) from error.__cause__
            await self._sleep(delay)

    async def _attempt(self, url: str) -> bytes:
        policy = self.policy
        body: _Body | None = None
        try:
            response = await self._client.send(
                self._with_credentials(self._client.build_request("GET", url)), stream=True)
            try:
                redirects = 0
                while response.next_request is not None:
                    redirects += 1
                    if redirects > policy.max_redirects:
                        raise _too_many_redirects(policy)
                    await response.aclose()
                    response = await self._client.send(
                        self._with_credentials(response.next_request), stream=True)
                body = _Body.for_response(response, policy, url)
                async for chunk in response.aiter_raw():
                    body.feed(chunk)
                return body.finish()
            finally:
                await response.aclose()
        except httpx.HTTPError as exc:
            raise _failure_from_exception(exc, body, policy) from exc
        except ForbiddenAddressError as exc:
            raise _forbidden(exc) from exc


def read_url(url: str, max_bytes: int, *, policy: HttpPolicy | None = None) -> bytes:
    """GET ``url`` and return its body, at most ``max_bytes`` of it (synchronous).

    Same rules as :meth:`HttpFetcher.fetch` (``policy``, default :class:`HttpPolicy`, with its
    ``max_bytes`` replaced by the argument), SSRF guard included; waits between retries with
    :func:`time.sleep`. ``total_timeout`` is checked as chunks arrive, so it may be overrun by
    up to ``read_timeout``.
    """
    policy = dataclasses.replace(policy or HttpPolicy(), max_bytes=max_bytes)
    _check_url(url)
    client = httpx.Client(transport=guarded_transport(policy.guard(),
                                                      **_transport_options(policy, 1)),
                          **_client_options(policy))
    rng = random.Random()
    try:
        attempt = 0
        while True:
            attempt += 1
            try:
                return _attempt_sync(client, url, policy)
            except _Failure as failure:
                delay = _retry_delay(policy, failure, attempt, rng)
                if delay is None:
                    raise failure.to_error(url, attempt, policy) from failure.__cause__
            time.sleep(delay)
    finally:
        client.close()


def _attempt_sync(client: httpx.Client, url: str, policy: HttpPolicy) -> bytes:
    deadline = time.monotonic() + policy.total_timeout
    body: _Body | None = None
    try:
        response = client.send(client.build_request("GET", url), stream=True,
                               follow_redirects=False)
        try:
            redirects = 0
            while response.next_request is not None:
                redirects += 1
                if redirects > policy.max_redirects:
                    raise _too_many_redirects(policy)
                response.close()
                response = client.send(response.next_request, stream=True,
                                       follow_redirects=False)
            body = _Body.for_response(response, policy, url)
            for chunk in response.iter_raw():
                body.feed(chunk)
                if time.monotonic() > deadline:
                    raise _total_timeout_failure(policy)
            return body.finish()
        finally:
            response.close()
    except httpx.HTTPError as exc:
        raise _failure_from_exception(exc, body, policy) from exc
    except ForbiddenAddressError as exc:
        raise _forbidden(exc) from exc


# --- shared rules -------------------------------------------------------------------------------


def _h2_available() -> bool:
    return importlib.util.find_spec("h2") is not None


def _transport_options(policy: HttpPolicy, concurrency: int) -> dict[str, object]:
    # A transport of our own also means no proxy from the environment: a proxy would make
    # the connection (and the name lookup) the guard has to check.
    return {
        "http2": policy.http2 and _h2_available(),
        "limits": httpx.Limits(max_connections=concurrency,
                               max_keepalive_connections=concurrency),
    }


def _client_options(policy: HttpPolicy) -> dict[str, object]:
    return {
        "timeout": httpx.Timeout(connect=policy.connect_timeout, read=policy.read_timeout,
                                 write=policy.read_timeout, pool=policy.connect_timeout),
        "follow_redirects": False,  # followed by hand, so redirect bodies are never read
        "headers": {"User-Agent": policy.user_agent, "Accept": "image/*,*/*;q=0.5",
                    "Accept-Encoding": "identity"},
    }


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    default = {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host, url.port or default


def _check_url(url: str) -> None:
    problem = None
    if not is_url(url):
        problem = "only http:// and https:// URLs can be fetched"
    else:
        try:
            host = httpx.URL(url).raw_host.decode("ascii", errors="replace")
            if not host:
                problem = "it has no host name"
            elif not _HOST_CHARS.fullmatch(host):
                problem = f"bad host name {host!r}"
        except httpx.InvalidURL as exc:
            problem = str(exc).replace(url, redact_url(url))
    if problem:
        raise FetchError(f"{redact_url(url)}: not a valid URL ({problem}); fix the URL",
                         kind="invalid_url", transient=False, attempts=1)


class _Failure(Exception):
    """One failed attempt, before we know whether it will be retried."""

    def __init__(self, kind: str, what: str, advice: str, *, transient: bool,
                 retry_after: float | None = None) -> None:
        super().__init__(what)
        self.kind = kind
        self.what = what
        self.advice = advice
        self.transient = transient
        self.retry_after = retry_after

    def to_error(self, url: str, attempts: int, policy: HttpPolicy) -> FetchError:
        what = self.what
        if self.retry_after is not None and self.retry_after > policy.max_retry_after:
            what += (f", Retry-After {self.retry_after:,.0f} s is over the "
                     f"{policy.max_retry_after:g} s limit so it was not waited for")
        if attempts > 1:
            what += f" (after {attempts} attempts)"
        message = f"{redact_url(url)}: {what}; {self.advice}"
        return FetchError(message, kind=self.kind, transient=self.transient, attempts=attempts)


def _retry_delay(policy: HttpPolicy, failure: _Failure, attempt: int,
                 rng: random.Random) -> float | None:
    """Seconds to wait before the next attempt, or None when there must not be one."""
    if not failure.transient or attempt > policy.retries:
        return None
    if failure.retry_after is not None:
        return None if failure.retry_after > policy.max_retry_after else failure.retry_after
    return backoff_delay(policy, attempt, rng)


def _status_failure(response: httpx.Response) -> _Failure:
    status = response.status_code
    what = f"HTTP {status} {response.reason_phrase}".rstrip()
    transient = status in TRANSIENT_STATUSES or status >= 500
    if status == 429:
        advice = _SLOW_DOWN
    elif status in (401, 403, 407):
        advice = "access denied: the URL may need credentials, or a signed URL may have expired"
    elif status in (404, 410):
        advice = "nothing is there: fix or clear the URL"
    elif status >= 500:
        advice = "the server is failing: try again later"
    elif transient:
        advice = "the server gave up on the request: try again later"
    elif status < 400:
        advice = "the server answered with a redirect status but no usable Location header"
    else:
        advice = "the server refused the request"
    retry_after = parse_retry_after(response.headers.get("retry-after")) if transient else None
    return _Failure(f"http_{status}", what, advice, transient=transient, retry_after=retry_after)


def _forbidden(exc: ForbiddenAddressError) -> _Failure:
    return _Failure("forbidden_address", str(exc), ADVICE, transient=False)


def _too_many_redirects(policy: HttpPolicy) -> _Failure:
    return _Failure("too_many_redirects", f"more than {policy.max_redirects} redirects",
                    "a redirect loop? open the URL in a browser to see where it leads",
                    transient=False)


def _total_timeout_failure(policy: HttpPolicy) -> _Failure:
    return _Failure("timeout", f"download took longer than {policy.total_timeout:g} s",
                    f"the server is too slow; {_REACH}", transient=True)


def _failure_from_exception(exc: httpx.HTTPError, body: _Body | None,
                            policy: HttpPolicy) -> _Failure:
    """Classify an httpx error; ``body`` is None if it happened before the body started."""
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectTimeout):
        return _Failure("timeout", f"could not connect within {policy.connect_timeout:g} s",
                        _REACH, transient=True)
    if isinstance(exc, httpx.TimeoutException):
        where = "the response" if body is None else f"more data after {body.raw:,} bytes"
        return _Failure("timeout", f"waited over {policy.read_timeout:g} s for {where}",
                        f"the server is stalled or slow; {_REACH}", transient=True)
    if isinstance(exc, httpx.UnsupportedProtocol):
        return _Failure("invalid_url", f"unsupported URL ({detail})",
                        "only http:// and https:// can be fetched, including in redirects",
                        transient=False)
    if body is not None and isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        expected = f" of {body.announced:,}" if body.announced is not None else ""
        return _Failure("truncated",
                        f"connection closed after {body.raw:,}{expected} bytes of the body",
                        "the server or network dropped the download: try again later",
                        transient=True)
    if body is None and (isinstance(exc, httpx.ReadError) or (
            isinstance(exc, httpx.RemoteProtocolError)
            and "disconnected without sending a response" in detail)):
        # A reset or hang-up after the request was sent; httpx's text is often just the class
        # name ("ReadError"), which tells the user nothing.
        return _Failure("connection", "connection closed before the response headers arrived "
                        "(reset or dropped by the server or a proxy)",
                        "the server or network dropped the request: try again later",
                        transient=True)
    if isinstance(exc, httpx.RemoteProtocolError) and "location header" in detail.lower():
        return _Failure("invalid_redirect", f"bad redirect ({detail})",
                        "the server sent an unusable Location header", transient=False)
    if isinstance(exc, httpx.ConnectError) and "CERTIFICATE_VERIFY_FAILED" in detail:
        return _Failure("tls", f"TLS certificate not trusted ({detail})",
                        "the server's HTTPS certificate is invalid or self-signed",
                        transient=False)
    if isinstance(exc, httpx.ConnectError):
        return _Failure("connection", f"could not connect ({detail})", _REACH, transient=True)
    return _Failure("connection", f"connection failed ({detail})", _REACH, transient=True)


class _Body:
    """Collects a response body under the byte cap, decoding gzip/deflate incrementally."""

    def __init__(self, policy: HttpPolicy, url: str, encoding: str,
                 announced: int | None) -> None:
        self.max_bytes = policy.max_bytes
        self.url = url
        self.announced = announced
        self.raw = 0  #: bytes received on the wire
        self.size = 0  #: bytes kept (after decoding)
        self._chunks: list[bytes] = []
        self._encoding = encoding
        self._inflate = None if encoding == "identity" else zlib.decompressobj(
            zlib.MAX_WBITS | 32 if encoding == "gzip" else zlib.MAX_WBITS)

    @classmethod
    def for_response(cls, response: httpx.Response, policy: HttpPolicy, url: str) -> _Body:
        """Check status and headers before any of the body is read."""
        if not response.is_success:
            raise _status_failure(response)
        length = response.headers.get("content-length", "").strip()
        announced = int(length) if length.isdigit() else None
        if announced is not None and announced > policy.max_bytes:
            raise ImageTooLargeError(
                f"{redact_url(url)}: server announces {announced:,} bytes, over the "
                f"{policy.max_bytes:,}-byte limit (raise --max-bytes to score it)")
        codings = [c.strip().lower() for c in response.headers.get("content-encoding", "")
                   .split(",") if c.strip().lower() not in ("", "identity")]
        if not codings:
            encoding = "identity"
        elif len(codings) == 1 and codings[0] in ("gzip", "x-gzip", "deflate"):
            encoding = "deflate" if codings[0] == "deflate" else "gzip"
        else:
            raise _Failure("content_encoding", f"unsupported Content-Encoding {', '.join(codings)}",
                           "pixelgrade asks for plain bodies and decodes only gzip and deflate",
                           transient=False)
        return cls(policy, url, encoding, announced)

    def feed(self, chunk: bytes) -> None:
        self.raw += len(chunk)
        if self._inflate is None:
            self._keep(chunk)
            return
        room = self.max_bytes - self.size + 1  # one byte more than allowed proves "too large"
        try:
            data = self._inflate.decompress(chunk, room)
        except zlib.error as exc:
            if self.raw != len(chunk) or self._encoding != "deflate":
                raise self._bad_encoding(exc) from exc
            # "deflate" is meant to be zlib-wrapped, but some servers send raw deflate.
            self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
            self._encoding = "raw deflate"
            try:
                data = self._inflate.decompress(chunk, room)
            except zlib.error as raw_exc:
                raise self._bad_encoding(raw_exc) from raw_exc
        self._keep(data)

    def finish(self) -> bytes:
        if self._inflate is not None and not self._inflate.eof:
            raise self._bad_encoding("compressed stream ends early")
        return b"".join(self._chunks)

    def _keep(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.max_bytes:
            raise ImageTooLargeError(
                f"{redact_url(self.url)}: response exceeded the {self.max_bytes:,}-byte limit "
                "while downloading (raise --max-bytes to score it)")
        self._chunks.append(data)

    def _bad_encoding(self, reason: object) -> _Failure:
        return _Failure("content_encoding", f"corrupt {self._encoding} body ({reason})",
                        "the server sends a broken compressed body", transient=False)
