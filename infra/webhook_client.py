"""HTTP POST to a webhook, with an SSRF guard for URLs that came with a job (untrusted input).

The guard resolves the host once, refuses any address that is not globally routable (loopback, private,
link-local, shared, reserved, multicast) and always the cloud metadata addresses, then connects to the
very address it checked (the TLS handshake still names the host), so DNS cannot answer differently
between the check and the connection. Redirects are never followed. `allow_private` (the operator's
`DROPFIT_WEBHOOK_ALLOW_PRIVATE`) lifts the address rule and allows plain http, for development only.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)
MAX_RESPONSE_BYTES = 64 * 1024

Resolver = Callable[[str, int], list[str]]


class RefusedUrl(ValueError):
    """A subscriber URL we will not call: its scheme, or where its host resolves."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str
    address: str  # the resolved IP the request connects to


@dataclass(frozen=True)
class HttpReply:
    status: int
    headers: dict[str, str]


def system_resolver(host: str, port: int) -> list[str]:
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def address_refusal(address: str, allow_private: bool) -> str | None:
    """Why `address` may not be called, or None."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    mapped = getattr(ip, "ipv4_mapped", None)
    ip = mapped or ip
    if ip in METADATA_ADDRESSES:
        return f"{ip} is a cloud metadata address"
    if allow_private:
        return None
    if ip.is_loopback or ip.is_link_local or ip.is_private or ip.is_multicast or not ip.is_global:
        return f"{ip} is not a public address (loopback, private, link-local or reserved)"
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
    return Target(parts.scheme, parts.hostname, port, path, addresses[0])


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, target: Target, timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(target.host, target.port, timeout=timeout, context=context)
        self._address = target.address
        self._tls = context

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)


class HttpPoster:
    """The real transport: one POST, connected to the address the guard checked; no redirects."""

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        self._context = context or ssl.create_default_context()

    def post(self, target: Target, body: bytes, headers: dict[str, str], timeout: float) -> HttpReply:
        conn: http.client.HTTPConnection = (
            _PinnedHTTPSConnection(target, timeout, self._context) if target.scheme == "https"
            else _PinnedHTTPConnection(target, timeout))
        try:
            conn.request("POST", target.path, body=body, headers={**headers, "user-agent": "dropfit-webhooks/1"})
            response = conn.getresponse()
            response.read(MAX_RESPONSE_BYTES)
            return HttpReply(response.status, {k.lower(): v for k, v in response.getheaders()})
        finally:
            conn.close()
