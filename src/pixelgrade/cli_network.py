"""Command-line options shared by every command that fetches URLs: the SSRF guard's opt-ins
(see :mod:`pixelgrade.sources.netguard`)."""

from __future__ import annotations

from typing import Annotated

import typer

from pixelgrade.sources.http import HttpPolicy

AllowPrivateNetworkOpt = Annotated[bool, typer.Option(
    "--allow-private-network", envvar="PIXELGRADE_ALLOW_PRIVATE_NETWORK",
    help="Also fetch URLs on loopback, private, link-local and other non-public addresses "
    "(refused by default: rows must not make pixelgrade reach your internal network). "
    "Only for a network you trust.")]
AllowHostOpt = Annotated[list[str] | None, typer.Option(
    "--allow-host", envvar="PIXELGRADE_ALLOW_HOSTS", metavar="HOST",
    help="Fetch from this host even if it is on a private network: a host name, an IP "
    "address or a network (10.0.0.0/8). Repeatable; in the environment, space-separated.")]


def network_policy(max_bytes: int, allow_private_network: bool,
                   allow_host: list[str] | None, **limits: object) -> HttpPolicy:
    """The :class:`HttpPolicy` of a command: its size cap and the guard's opt-ins."""
    return HttpPolicy(max_bytes=max_bytes, allow_private_network=allow_private_network,
                      allowed_hosts=frozenset(allow_host or ()), **limits)  # type: ignore[arg-type]
