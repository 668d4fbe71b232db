"""Who is calling, by network address: the peer, or what trusted proxies say it was."""

from collections.abc import Sequence
from ipaddress import IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

from starlette.types import Scope

Network = IPv4Network | IPv6Network
_STATE_KEY = "client_address"


def client_address(scope: Scope, trusted_proxies: Sequence[Network]) -> str:
    """The client's address. X-Forwarded-For is believed only from a trusted proxy, and then
    read from the right: the first address that is not itself a trusted proxy is the client
    (anything left of it could have been written by the client)."""
    peer = _peer(scope)
    if not trusted_proxies or not _is_trusted(peer, trusted_proxies):
        return peer
    hops = [
        hop.strip()
        for name, value in scope.get("headers") or []
        if name == b"x-forwarded-for"
        for hop in value.decode("latin-1").split(",")
        if hop.strip()
    ]
    for hop in reversed(hops):
        if not _is_trusted(hop, trusted_proxies):
            try:
                return str(ip_address(hop))
            except ValueError:
                return peer  # a garbled hop: fall back to what we know
    return hops[0] if hops else peer


def _is_trusted(address: str, trusted: Sequence[Network]) -> bool:
    try:
        parsed = ip_address(address)
    except ValueError:
        return False
    return any(parsed in network for network in trusted)


def rate_key(address: str) -> str:
    """The key an address is counted under. IPv6 hosts usually hold a whole /64, so they are
    counted per /64; a host could otherwise take a fresh address for every request."""
    try:
        parsed = ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


def remember(scope: Scope, address: str) -> None:
    scope.setdefault("state", {})[_STATE_KEY] = address


def remembered(scope: Scope) -> str:
    """The address `remember` stored for this request, else the peer's."""
    state = scope.get("state") or {}
    return str(state.get(_STATE_KEY) or _peer(scope))


def _peer(scope: Scope) -> str:
    return str((scope.get("client") or ("unknown", 0))[0])
