"""The SSRF guard: the address classifier (a table of addresses and spellings), and fetches
against a real loopback server, refused by default and allowed only by an explicit opt-in,
including through redirects and DNS names."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import re
import threading
from collections.abc import Iterator

import pytest

from pixelgrade.errors import FetchError
from pixelgrade.sources.http import HttpFetcher, HttpPolicy, read_url
from pixelgrade.sources.netguard import (
    ForbiddenAddressError,
    NetGuard,
    forbidden_category,
    literal_address,
    origin_of,
)
from tests.sources.test_http import JPEG, SleepRecorder, _Server, reply

# (host as written in a URL, the address it spells, why it is refused or None when allowed)
ADDRESSES = [
    ("127.0.0.1", "127.0.0.1", "loopback"),
    ("127.255.0.9", "127.255.0.9", "loopback"),
    ("2130706433", "127.0.0.1", "loopback"),  # decimal
    ("0x7f000001", "127.0.0.1", "loopback"),  # hex
    ("0x7f.1", "127.0.0.1", "loopback"),  # hex, short form
    ("0177.0.0.1", "127.0.0.1", "loopback"),  # octal
    ("127.1", "127.0.0.1", "loopback"),  # short form
    ("[::1]", "::1", "loopback"),
    ("[::ffff:127.0.0.1]", "::ffff:127.0.0.1", "IPv4-in-IPv6 loopback"),
    ("[::ffff:7f00:1]", "::ffff:127.0.0.1", "IPv4-in-IPv6 loopback"),
    ("[64:ff9b::a9fe:a9fe]", "64:ff9b::a9fe:a9fe", "IPv4-in-IPv6 link-local (cloud metadata)"),
    ("[2002:c0a8:0101::]", "2002:c0a8:101::", "IPv4-in-IPv6 private"),  # 6to4 of 192.168.1.1
    ("0.0.0.0", "0.0.0.0", "unspecified"),
    ("0", "0.0.0.0", "unspecified"),
    ("[::]", "::", "unspecified"),
    ("169.254.169.254", "169.254.169.254", "link-local (cloud metadata)"),
    ("0xa9fea9fe", "169.254.169.254", "link-local (cloud metadata)"),
    ("[fe80::1]", "fe80::1", "link-local"),
    ("10.0.0.1", "10.0.0.1", "private"),
    ("172.16.5.4", "172.16.5.4", "private"),
    ("172.31.255.255", "172.31.255.255", "private"),
    ("192.168.0.1", "192.168.0.1", "private"),
    ("[fc00::1]", "fc00::1", "private"),
    ("[fd00:ec2::254]", "fd00:ec2::254", "private"),  # AWS metadata over IPv6
    ("100.64.0.1", "100.64.0.1", "shared (carrier-grade NAT)"),
    ("100.127.255.254", "100.127.255.254", "shared (carrier-grade NAT)"),
    ("224.0.0.1", "224.0.0.1", "multicast"),
    ("239.255.255.250", "239.255.255.250", "multicast"),
    ("[ff02::1]", "ff02::1", "multicast"),
    ("192.0.2.10", "192.0.2.10", "private"),  # documentation (TEST-NET-1)
    ("198.18.0.1", "198.18.0.1", "private"),  # benchmarking
    ("240.0.0.1", "240.0.0.1", "private"),  # reserved (class E)
    ("255.255.255.255", "255.255.255.255", "private"),  # limited broadcast
    ("8.8.8.8", "8.8.8.8", None),
    ("1.1.1.1", "1.1.1.1", None),
    ("172.32.0.1", "172.32.0.1", None),  # just past 172.16.0.0/12
    ("100.128.0.1", "100.128.0.1", None),  # just past 100.64.0.0/10
    ("[2606:4700:4700::1111]", "2606:4700:4700::1111", None),
    ("[::ffff:8.8.8.8]", "::ffff:8.8.8.8", None),
]


@pytest.mark.parametrize(("host", "address", "category"), ADDRESSES)
def test_classifier(host: str, address: str, category: str | None) -> None:
    parsed = literal_address(host)
    assert parsed == ipaddress.ip_address(address)
    assert forbidden_category(parsed) == category


@pytest.mark.parametrize("host", ["example.com", "localhost", "1.2.3.4.5", "0x", "08.1",
                                  "127.0.0.1.nip.io", "[not-an-address]"])
def test_host_names_are_not_literals(host: str) -> None:
    assert literal_address(host) is None


def test_any_forbidden_address_among_the_answers_refuses_the_name() -> None:
    guard = NetGuard()
    assert guard.check("cdn.example", ["93.184.216.34", "2606:2800:220:1::"]) == [
        "93.184.216.34", "2606:2800:220:1::"]
    with pytest.raises(ForbiddenAddressError, match=re.escape(
            "cdn.example resolves to 10.0.0.7, a private address")):
        guard.check("cdn.example", ["93.184.216.34", "10.0.0.7"])


def test_allowed_hosts_names_addresses_and_networks() -> None:
    guard = NetGuard(allowed_hosts=frozenset({"Images.Internal.", "10.1.0.0/16", "[fd00::5]"}))
    assert guard.passes_unchecked("images.internal", 80)
    assert not guard.passes_unchecked("other.internal", 80)
    assert guard.check("x", ["10.1.2.3", "fd00::5"]) == ["10.1.2.3", "fd00::5"]
    with pytest.raises(ForbiddenAddressError):
        guard.check("x", ["10.2.0.1"])
    with pytest.raises(ValueError, match="--allow-host"):
        NetGuard(allowed_hosts=frozenset({"10.0.0.0/99"}))


@pytest.mark.parametrize(("location", "origin"), [
    ("https://CDN.example.com/{path}", "https://cdn.example.com:443"),
    ("http://cdn.example.com:8080/img/{id}.jpg", "http://cdn.example.com:8080"),
    ("http://[::1]:9000/x", "http://[::1]:9000"),
    ("https://{path}", None),  # the row would choose the host: nothing to trust
    ("https://cdn.example.com{path}", None),  # the row continues the host name
    ("ftp://files.example.com/{path}", None),
    ("photos/{path}", None),
])
def test_origin_of(location: str, origin: str | None) -> None:
    assert origin_of(location) == origin


# -- fetching from a real loopback server -------------------------------------------------------


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    srv.route("/cat.jpg")(lambda h, n: reply(h, 200, JPEG, {"Content-Type": "image/jpeg"}))
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.stop.set()
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


def _fetch(url: str, policy: HttpPolicy) -> bytes:
    async def run() -> bytes:
        async with HttpFetcher(policy, concurrency=2, sleep=SleepRecorder()) as fetcher:
            return await fetcher.fetch(url)
    return asyncio.run(run())


def _both(url: str, policy: HttpPolicy) -> list[bytes | FetchError]:
    """The async fetcher's and the sync reader's answers (the error when one refuses)."""
    answers: list[bytes | FetchError] = []
    for call in (_fetch, lambda u, p: read_url(u, 10_000_000, policy=p)):
        try:
            answers.append(call(url, policy))
        except FetchError as exc:
            answers.append(exc)
    return answers


def _refused(answers: list[bytes | FetchError]) -> list[FetchError]:
    for answer in answers:
        assert isinstance(answer, FetchError), "fetched although it should be refused"
        assert (answer.kind, answer.transient, answer.attempts) == (
            "forbidden_address", False, 1)
        assert "--allow-private-network" in str(answer) and "--allow-host" in str(answer)
    return answers  # type: ignore[return-value]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "2130706433", "0x7f.1",
                                  "127.1", "[::ffff:127.0.0.1]"])
def test_loopback_refused_by_default_in_every_spelling(server: _Server, host: str) -> None:
    port = server.server_address[1]
    errors = _refused(_both(f"http://{host}:{port}/cat.jpg", HttpPolicy()))
    assert "127.0.0.1" in str(errors[0]) and "loopback" in str(errors[0])
    assert server.hits["/cat.jpg"] == 0  # refused before connecting, not after


def test_loopback_allowed_with_the_opt_ins(server: _Server) -> None:
    port = server.server_address[1]
    url = f"http://localhost:{port}/cat.jpg"
    assert _both(url, HttpPolicy(allow_private_network=True)) == [JPEG, JPEG]
    assert _both(url, HttpPolicy(allowed_hosts=frozenset({"localhost"}))) == [JPEG, JPEG]
    assert _both(f"http://127.0.0.1:{port}/cat.jpg",
                 HttpPolicy(allowed_hosts=frozenset({"127.0.0.0/8"}))) == [JPEG, JPEG]
    assert server.hits["/cat.jpg"] == 6


def test_a_configured_origin_is_trusted_exactly(server: _Server) -> None:
    port = server.server_address[1]
    policy = HttpPolicy().trusting(f"http://127.0.0.1:{port}/{{path}}")
    assert _both(f"http://127.0.0.1:{port}/cat.jpg", policy) == [JPEG, JPEG]
    # The same server under another name, or the same host on another port: not configured.
    _refused(_both(f"http://localhost:{port}/cat.jpg", policy))
    _refused(_both(f"http://127.0.0.1:{port + 1 if port < 65535 else port - 1}/cat.jpg",
                   policy))
    assert server.hits["/cat.jpg"] == 2


@pytest.mark.parametrize("target", ["http://127.0.0.1:{other}/cat.jpg",
                                    "http://169.254.169.254/latest/meta-data/",
                                    "http://[::ffff:169.254.169.254]/latest/meta-data/",
                                    "http://0x7f.1:{other}/cat.jpg",
                                    "http://localhost:{port}/cat.jpg"])
def test_a_redirect_from_a_trusted_origin_to_a_private_address_is_refused(
        server: _Server, target: str) -> None:
    port = server.server_address[1]
    other = _Server()  # a second loopback server that must never be reached
    thread = threading.Thread(target=other.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        location = target.format(port=port, other=other.server_address[1])
        server.route("/hop")(lambda h, n: reply(h, 302, b"", {"Location": location}))
        policy = HttpPolicy().trusting(f"http://127.0.0.1:{port}")
        _refused(_both(f"http://127.0.0.1:{port}/hop", policy))
        assert server.hits["/hop"] == 2 and server.hits["/cat.jpg"] == 0
        assert sum(other.hits.values()) == 0
    finally:
        other.shutdown()
        other.server_close()
        thread.join(timeout=5)


@pytest.mark.parametrize("target", ["file:///etc/passwd", "gopher://127.0.0.1:70/_x",
                                    "ftp://example.com/a.jpg"])
def test_a_redirect_to_another_scheme_is_refused(server: _Server, target: str) -> None:
    port = server.server_address[1]
    server.route("/hop")(lambda h, n: reply(h, 302, b"", {"Location": target}))
    for answer in _both(f"http://127.0.0.1:{port}/hop", HttpPolicy(allow_private_network=True)):
        assert isinstance(answer, FetchError) and answer.kind == "invalid_url", answer
        assert not answer.transient


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/a.jpg",
                                 "gopher://127.0.0.1:70/_", "data:image/png;base64,iVBORw0K",
                                 "dict://127.0.0.1:11211/stat", "//example.com/a.jpg"])
def test_only_http_and_https(url: str) -> None:
    for answer in _both(url, HttpPolicy(allow_private_network=True)):
        assert isinstance(answer, FetchError) and answer.kind == "invalid_url"
        assert "only http:// and https://" in str(answer)


def test_a_name_resolving_to_loopback_is_refused_and_the_checked_address_is_used(
        server: _Server) -> None:
    """The resolver answers once per connection; what it answered is what is connected to."""
    port = server.server_address[1]
    answers = iter([["127.0.0.1"], ["169.254.169.254"], ["93.184.216.34", "127.0.0.1"]])
    asked: list[str] = []

    def rebinding(host: str, port: int) -> list[str]:
        asked.append(host)
        return next(answers)

    # 127.0.0.1 allowed as an address (not as a name): images.test exists only in our
    # resolver, so a success proves the socket went to the address that was checked.
    policy = HttpPolicy(allowed_hosts=frozenset({"127.0.0.1"}), resolver=rebinding)
    url = f"http://images.test:{port}/cat.jpg"
    assert read_url(url, 1_000_000, policy=policy) == JPEG
    with pytest.raises(FetchError, match=re.escape("images.test resolves to 169.254.169.254")):
        read_url(url, 1_000_000, policy=policy)
    with pytest.raises(FetchError, match=re.escape("images.test resolves to 127.0.0.1")) as caught:
        _fetch(url, dataclasses.replace(policy, allowed_hosts=frozenset()))
    assert caught.value.kind == "forbidden_address"
    assert asked == ["images.test"] * 3 and server.hits["/cat.jpg"] == 1
