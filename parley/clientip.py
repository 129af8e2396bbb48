"""The client's address behind proxies, for the gateway and the server alike: the peer, or
what a proxy it trusts says the client was (X-Forwarded-For at the gateway, the X-Real-IP
the gateway sets at the server)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(entries: Iterable[str]) -> list[Network]:
    """PARLEY_TRUSTED_PROXIES entries: addresses or CIDR networks; a bad one raises ValueError."""
    return [ipaddress.ip_network(entry.strip(), strict=False) for entry in entries if entry.strip()]


def is_trusted(address: str | None, networks: list[Network]) -> bool:
    if not address or not networks:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_ip(peer: str | None, forwarded_for: str | None, networks: list[Network]) -> str:
    """The peer, or when the peer is a trusted proxy the nearest untrusted X-Forwarded-For hop."""
    if not peer:
        return "unknown"
    if not forwarded_for or not is_trusted(peer, networks):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop, networks):
            return hop if is_ip(hop) else peer
    return hops[0] if hops and is_ip(hops[0]) else peer


def real_ip(peer: str, x_real_ip: str | None, trusted: Iterable[str]) -> str:
    """The X-Real-IP that a local gateway (a loopback peer) or a proxy in `trusted`
    (PARLEY_TRUSTED_PROXIES entries) put there for the real client, else the peer."""
    forwarded = (x_real_ip or "").strip()
    if forwarded and is_proxy(peer, trusted):
        return forwarded[:64]
    return peer


def is_proxy(peer: str, trusted: Iterable[str]) -> bool:
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    networks = (ipaddress.ip_network(entry, strict=False) for entry in trusted)
    return address.is_loopback or any(address in network for network in networks)


def is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
