"""The real webhook client tries each address the guard allowed, in turn, until one answers, within the
request's timeout; the request keeps the URL's host name. A real HTTP server on 127.0.0.1 only; names resolve
through an injected resolver; nothing leaves loopback."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from events.webhooks import DeliveryRecord
from infra.publishers import WebhookChannel
from infra.webhook_client import HttpPoster, Target

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@dataclass
class Receiver:
    port: int
    requests: list[tuple[str, str | None]]  # (path, Host header)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """An HTTP server on 127.0.0.1 only; [::1] on its port is bound but not listening (a refused connection)."""
    requests: list[tuple[str, str | None]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            self.rfile.read(int(self.headers["content-length"]))
            requests.append((self.path, self.headers["host"]))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    ipv6 = _hold_ipv6_loopback(port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield Receiver(port, requests)
    finally:
        server.shutdown()
        server.server_close()
        if ipv6 is not None:
            ipv6.close()


def _hold_ipv6_loopback(port: int) -> socket.socket | None:
    """Bind [::1]:port without listening, so that no one else can answer there; None without IPv6."""
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        sock.bind(("::1", port))
    except OSError:
        return None  # no IPv6 loopback here: connecting to ::1 fails anyway
    return sock


@dataclass
class RecordingConnector:
    """socket.create_connection, recording each address and timeout it is asked for."""

    calls: list[tuple[str, float]] = field(default_factory=list)

    def __call__(self, address: tuple[str, int], timeout: float) -> socket.socket:
        self.calls.append((address[0], timeout))
        return socket.create_connection(address, timeout)


def resolves_to(*addresses: str):
    def resolver(host: str, port: int) -> list[str]:
        return list(addresses)

    return resolver


def record_for(url: str) -> DeliveryRecord:
    return DeliveryRecord(event_id="e", event_type="dropfit.job.succeeded", job_id="j", message_id="msg_e",
                          channel="webhook-x", kind="webhook", target=url, per_job=True, body="{}")


def test_localhost_delivers_on_127_0_0_1_after_1_refuses(receiver: Receiver) -> None:
    url = f"http://hooks.localtest:{receiver.port}/hook?n=1"
    connector = RecordingConnector()
    channel = WebhookChannel(url, (SECRET,), per_job=True, allow_private=True, timeout_s=5.0,
                             poster=HttpPoster(connect=connector), resolver=resolves_to("::1", "127.0.0.1"))
    result = channel.send(record_for(url), datetime.now(UTC))
    assert (result.outcome, result.status) == ("delivered", 204)
    assert [address for address, _ in connector.calls] == ["::1", "127.0.0.1"]
    assert receiver.requests == [("/hook?n=1", f"hooks.localtest:{receiver.port}")], "the Host is the URL's name"


def test_a_refused_address_is_never_connected_to_even_when_another_is_fine(receiver: Receiver) -> None:
    url = f"http://hooks.localtest:{receiver.port}/hook"
    connector = RecordingConnector()
    channel = WebhookChannel(url, (SECRET,), per_job=True, allow_private=True, poster=HttpPoster(connect=connector),
                             resolver=resolves_to("127.0.0.1", "64:ff9b::169.254.169.254"))
    result = channel.send(record_for(url), datetime.now(UTC))
    assert result.outcome == "failed" and "cloud metadata" in (result.error or "")
    assert connector.calls == [] and receiver.requests == []


def test_every_try_shares_one_timeout() -> None:
    """Three addresses that never answer take a third of the time each: the whole POST ends on time."""
    timeouts: list[float] = []

    def hangs(address: tuple[str, int], timeout: float) -> socket.socket:
        timeouts.append(timeout)
        time.sleep(timeout)
        raise TimeoutError("timed out")

    target = Target("http", "hooks.localtest", 9, "/", ("127.0.0.2", "127.0.0.3", "127.0.0.4"))
    start = time.monotonic()
    with pytest.raises(ConnectionError, match="127.0.0.2: timed out; 127.0.0.3: timed out; 127.0.0.4"):
        HttpPoster(connect=hangs).post(target, b"{}", {}, timeout=0.6)
    assert time.monotonic() - start < 0.6 + 0.2
    assert len(timeouts) == 3 and all(0.1 < t <= 0.6 / (3 - i) + 1e-3 for i, t in enumerate(timeouts))


def test_a_refusal_hands_its_time_on() -> None:
    timeouts: list[float] = []

    def refuses(address: tuple[str, int], timeout: float) -> socket.socket:
        timeouts.append(timeout)
        raise ConnectionRefusedError(111, "Connection refused")

    target = Target("http", "hooks.localtest", 9, "/", ("::1", "127.0.0.2"))
    with pytest.raises(ConnectionError, match="Connection refused"):
        HttpPoster(connect=refuses).post(target, b"{}", {}, timeout=2.0)
    assert 0.9 < timeouts[0] <= 1.0 and timeouts[1] > 1.9


def test_once_connected_the_request_goes_nowhere_else() -> None:
    """A receiver that drops the connection after it was made may have had the request: no second address."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def drop_one() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.close()

    threading.Thread(target=drop_one, daemon=True).start()
    connector = RecordingConnector()
    target = Target("http", "hooks.localtest", port, "/", ("127.0.0.1", "127.0.0.1"))
    try:
        with pytest.raises(ConnectionResetError):  # http.client's RemoteDisconnected is one
            HttpPoster(connect=connector).post(target, b"{}", {}, timeout=5.0)
    finally:
        listener.close()
    assert [address for address, _ in connector.calls] == ["127.0.0.1"]
