"""What the gateway tells an upstream about the original request: the forwarding headers
that replace the client's, the hop-by-hop headers that never cross, and the query string
without its token (for the upstream WebSocket and for logs)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
DROP_REQUEST = HOP_BY_HOP | {
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-real-ip",
    "x-request-id",
    "forwarded",
}


@dataclass(frozen=True, slots=True)
class Forwarding:
    """What the gateway tells the upstream about the original request."""

    client_ip: str
    forwarded_for: str
    proto: str
    host: str
    request_id: str


def forwarding_headers(fwd: Forwarding) -> list[tuple[str, str]]:
    return [
        ("x-forwarded-for", fwd.forwarded_for),
        ("x-forwarded-proto", fwd.proto),
        ("x-forwarded-host", fwd.host),
        ("x-real-ip", fwd.client_ip),
        ("x-request-id", fwd.request_id),
    ]


def strip_token(query_string: bytes) -> str:
    """The query string without token parameters (for upstream WebSockets and for logs)."""
    known = _stripped.get(query_string)
    if known is not None:
        return known
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    stripped = urlencode([(k, v) for k, v in pairs if "token" not in k.lower()])
    if b"token" not in query_string.lower():  # nothing secret in it: worth remembering
        if len(_stripped) >= 4096:
            _stripped.clear()
        _stripped[query_string] = stripped
    return stripped


_stripped: dict[bytes, str] = {}
