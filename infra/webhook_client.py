"""HTTP POST to a webhook, with an SSRF guard for URLs that came with a job (untrusted input).

The guard resolves the host once and refuses the URL if any of its addresses is not globally routable
(loopback, private, link-local, shared, reserved, multicast) or is a cloud metadata address. An IPv6 address
that carries an IPv4 one (IPv4-mapped and -compatible, NAT64, 6to4, Teredo) is judged by that IPv4 address
too, as if it were given plainly. The client then connects to the very addresses it checked, in turn, until
one answers (the Host header and the TLS handshake still name the host), so DNS cannot answer differently
between the check and the connection. Redirects are never followed. `allow_private` (the operator's
`DROPFIT_WEBHOOK_ALLOW_PRIVATE`) lifts the address rule and allows plain http, for development only: the
metadata addresses stay refused, in every form.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, IPv6Network
from urllib.parse import urlsplit

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)
MAX_RESPONSE_BYTES = 64 * 1024
NAT64_WELL_KNOWN = IPv6Network("64:ff9b::/96")  # RFC 6052: the IPv4 address is the last 32 bits
NAT64_LOCAL = IPv6Network("64:ff9b:1::/48")  # RFC 8215: a local NAT64 prefix of 48, 56, 64 or 96 bits inside it
NAT64_LOCAL_PREFIXES = (48, 56, 64, 96)
IPV4_COMPATIBLE = IPv6Network("::/96")  # RFC 4291, deprecated: the last 32 bits (:: and ::1 excepted)
SITE_LOCAL = IPv6Network("fec0::/10")  # RFC 3879, deprecated
NOT_PUBLIC_V6 = (NAT64_LOCAL, IPV4_COMPATIBLE, SITE_LOCAL)  # not globally routable; Python 3.11 says global

IpAddress = IPv4Address | IPv6Address
Resolver = Callable[[str, int], list[str]]
Connector = Callable[[tuple[str, int], float], socket.socket]  # socket.create_connection's shape


class RefusedUrl(ValueError):
    """A subscriber URL we will not call: its scheme, or where its host resolves."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[str, ...]  # the resolved IPs the guard checked, tried in this order

    @property
    def address(self) -> str:
        """The address tried first."""
        return self.addresses[0]


@dataclass(frozen=True)
class HttpReply:
    status: int
    headers: dict[str, str]


def system_resolver(host: str, port: int) -> list[str]:
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def _rfc6052_ipv4(ip: IPv6Address, prefix_len: int) -> IPv4Address:
    """The IPv4 address under a NAT64 prefix of `prefix_len` bits (RFC 6052 2.2: bits 64-71 are always 0)."""
    bits = int(ip)
    squeezed = ((bits >> 64) << 56) | (bits & ((1 << 56) - 1))  # the 120 bits left without bits 64-71
    start = prefix_len if prefix_len <= 64 else prefix_len - 8
    return IPv4Address((squeezed >> (120 - start - 32)) & 0xFFFFFFFF)


def embedded_ipv4(ip: IPv6Address) -> tuple[IPv4Address, ...]:
    """The IPv4 addresses an IPv6 address carries: IPv4-mapped and -compatible, NAT64 (every prefix length
    the local-use range allows), 6to4, and a Teredo client's (its bits inverted, which `ipaddress` undoes)."""
    found: list[IPv4Address] = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip in IPV4_COMPATIBLE and int(ip) > 1:
        found.append(IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip in NAT64_WELL_KNOWN:
        found.append(_rfc6052_ipv4(ip, 96))
    if ip in NAT64_LOCAL:
        found.extend(_rfc6052_ipv4(ip, length) for length in NAT64_LOCAL_PREFIXES)
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.append(ip.teredo[1])
    return tuple(found)


def _is_metadata(ip: IpAddress) -> bool:
    return ip in METADATA_ADDRESSES


def _is_not_public(ip: IpAddress) -> bool:
    if isinstance(ip, IPv6Address) and any(ip in network for network in NOT_PUBLIC_V6):
        return True
    return ip.is_loopback or ip.is_link_local or ip.is_private or ip.is_multicast or not ip.is_global


_RULES = (  # (test, what it says), the metadata rule first: the operator's override never lifts it
    (_is_metadata, "is a cloud metadata address"),
    (_is_not_public, "is not a public address (loopback, private, link-local or reserved)"),
)


def address_refusal(address: str, allow_private: bool) -> str | None:
    """Why `address` may not be called, or None. An IPv6 address is refused for any IPv4 address it carries
    as that address given plainly would be; an IPv4-mapped one is only its IPv4 address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    carried = embedded_ipv4(ip) if isinstance(ip, IPv6Address) else ()
    judged = carried if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None else (ip, *carried)
    for wrong, why in _RULES[:1] if allow_private else _RULES:
        for candidate in judged:
            if wrong(candidate):
                return f"{ip} {why}" if candidate is ip else f"{ip} embeds {candidate}, which {why}"
    return None


def resolve_target(url: str, *, guard: bool, allow_private: bool, resolver: Resolver = system_resolver) -> Target:
    """Parse and resolve `url`; with `guard`, refuse non-https and non-public addresses (see the module doc)."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise RefusedUrl(f"{url!r} is not an http(s) URL")
    if guard and parts.scheme != "https" and not allow_private:
        raise RefusedUrl(f"{url!r}: webhooks must use https")
    if parts.username or parts.password:
        raise RefusedUrl("credentials in a webhook URL are not accepted")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = resolver(parts.hostname, port)
    except OSError as exc:
        raise ConnectionError(f"cannot resolve {parts.hostname}: {exc}") from exc
    if not addresses:
        raise ConnectionError(f"{parts.hostname} resolves to no address")
    if guard:
        for address in addresses:
            reason = address_refusal(address, allow_private)
            if reason:
                raise RefusedUrl(f"{parts.hostname} resolves to {reason}")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, parts.hostname, port, path, tuple(dict.fromkeys(addresses)))


def connect_any(addresses: Sequence[str], port: int, deadline: float,
                connect: Connector = socket.create_connection) -> socket.socket:
    """A socket connected to the first of `addresses` that answers. Each try may take an equal share of the
    time left before `deadline` (time.monotonic), so a refusal hands its share on and all the tries together
    end by then; the socket's timeout is then what is left, for the request and its reply."""
    failures: list[str] = []
    for index, address in enumerate(addresses):
        left = deadline - time.monotonic()
        if left <= 0:
            failures.append(f"no time left for {', '.join(addresses[index:])}")
            break
        try:
            sock = connect((address, port), left / (len(addresses) - index))
        except OSError as exc:
            failures.append(f"{address}: {str(exc) or type(exc).__name__}")
            continue
        sock.settimeout(max(deadline - time.monotonic(), 1e-3))  # 0 would make it non-blocking
        return sock
    raise ConnectionError(f"cannot connect to port {port}: {'; '.join(failures)}")


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, target: Target, deadline: float, connect: Connector) -> None:
        super().__init__(target.host, target.port)
        self._addresses, self._deadline, self._connect = target.addresses, deadline, connect

    def connect(self) -> None:
        self.sock = connect_any(self._addresses, self.port, self._deadline, self._connect)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, target: Target, deadline: float, connect: Connector, context: ssl.SSLContext) -> None:
        super().__init__(target.host, target.port, context=context)
        self._addresses, self._deadline, self._connect = target.addresses, deadline, connect
        self._tls = context

    def connect(self) -> None:
        raw = connect_any(self._addresses, self.port, self._deadline, self._connect)
        self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)


class HttpPoster:
    """The real transport: one POST to the first of the addresses the guard checked that accepts a connection,
    all within `timeout` (see `connect_any`); no redirects. Once connected it never tries another address,
    so a request is sent once at most. `connect` is the TCP connector (a test's stand-in for the network)."""

    def __init__(self, context: ssl.SSLContext | None = None, connect: Connector = socket.create_connection) -> None:
        self._context = context or ssl.create_default_context()
        self._connect = connect

    def post(self, target: Target, body: bytes, headers: dict[str, str], timeout: float) -> HttpReply:
        deadline = time.monotonic() + timeout
        conn: http.client.HTTPConnection = (
            _PinnedHTTPSConnection(target, deadline, self._connect, self._context) if target.scheme == "https"
            else _PinnedHTTPConnection(target, deadline, self._connect))
        try:
            conn.request("POST", target.path, body=body, headers={**headers, "user-agent": "dropfit-webhooks/1"})
            response = conn.getresponse()
            response.read(MAX_RESPONSE_BYTES)
            return HttpReply(response.status, {k.lower(): v for k, v in response.getheaders()})
        finally:
            conn.close()
