"""Who may ask `serve` anything (pure): the token, the Host header, the Origin header.

Like Jupyter's, every request needs the random token printed in the URL at start (`?token=`),
compared in constant time (hmac.compare_digest). The Host header must name this server by an
IP address or by a name it has (`localhost`; the machine's own names when it listens beyond
loopback): a page of another site whose name was made to point at 127.0.0.1 (DNS rebinding)
sends its own name, and is refused. A request made by a page must come from this server's
own origin: a browser says where a request comes from in `Origin` and `Sec-Fetch-Site`, and
only a top-level navigation (someone opening the URL) may come from elsewhere.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

TOKEN_BYTES = 32  # 256 bits, url-safe base64: 43 characters


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def is_loopback(address: str) -> bool:
    ip = _ip(address)
    return ip is not None and ip.is_loopback


def is_wildcard(address: str) -> bool:
    ip = _ip(address)
    return ip is not None and ip.is_unspecified


def split_host(header: str) -> tuple[str, int | None]:
    """`127.0.0.1:8780` -> ('127.0.0.1', 8780); `[::1]:8780` -> ('::1', 8780); the port is None
    when absent or not a number. The name is lower-cased, without a trailing dot."""
    header = header.strip()
    if header.startswith("["):
        name, _, rest = header[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        name, colon, port_text = header.rpartition(":")
        if not colon:
            name, port_text = header, ""
    port = (
        int(port_text)
        if port_text.isascii() and port_text.isdigit() and len(port_text) <= 5
        else None
    )
    return name.lower().rstrip("."), port


@dataclass(frozen=True)
class Guard:
    token: str
    port: int
    bound: str  # the address listened on
    names: frozenset[str]  # the host names by which this server may be asked for

    @classmethod
    def at(cls, token: str, bound: str, port: int, hostnames: Iterable[str] = ()) -> Guard:
        """The guard of a server listening on bound:port. hostnames: the machine's own names,
        accepted when it listens beyond loopback."""
        names = {"localhost"}
        if not is_loopback(bound):
            names |= {n.lower().rstrip(".") for n in hostnames if n}
        return cls(token, port, bound, frozenset(names))

    def token_ok(self, target: str) -> bool:
        """Does the request target (`/path?query`) carry the token? In constant time."""
        given = parse_qs(urlsplit(target).query).get("token", [""])[0]
        return hmac.compare_digest(given.encode("utf-8", "replace"), self.token.encode())

    def host_ok(self, header: str | None) -> bool:
        if not header:
            return False
        name, port = split_host(header)
        if port != self.port:
            return False
        ip = _ip(name)
        if ip is None:
            return name in self.names
        if is_wildcard(self.bound):
            return True  # any address of this machine; an address cannot be rebound
        if is_loopback(self.bound):
            return ip.is_loopback
        return ip == _ip(self.bound)

    def origin_ok(self, headers: Iterable[tuple[str, str]]) -> bool:
        """Asked by this server's own page, or by someone opening the URL (a top-level
        navigation); never by another site's script."""
        seen: dict[str, list[str]] = {}
        for key, value in headers:
            seen.setdefault(key.lower(), []).append(value)
        host = (seen.get("host") or [""])[0].lower()
        if any(o.lower() != f"http://{host}" for o in seen.get("origin", [])):
            return False
        sites = seen.get("sec-fetch-site", [])
        if all(s in ("same-origin", "none") for s in sites):
            return True
        return seen.get("sec-fetch-mode") == ["navigate"] and seen.get("sec-fetch-dest") == [
            "document"
        ]

    def allows(self, target: str, headers: Iterable[tuple[str, str]]) -> bool:
        """Every check (the answer to a refusal says nothing of which one failed). One Host
        header, no more."""
        items = list(headers)
        hosts = [v for k, v in items if k.lower() == "host"]
        host_ok = len(hosts) == 1 and self.host_ok(hosts[0])
        return self.token_ok(target) & host_ok & self.origin_ok(items)
