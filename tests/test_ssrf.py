"""The SSRF guard on IPv6 addresses that carry an IPv4 one: each form is judged by the IPv4 address inside, as
that address given plainly would be; the cloud metadata address stays refused in every form, even where the
operator allows private addresses. Names resolve through an injected resolver only; nothing connects."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from events.webhooks import DeliveryRecord
from infra.publishers import WebhookChannel
from infra.webhook_client import HttpReply, RefusedUrl, Target, address_refusal, resolve_target

PRIVATE, METADATA, PUBLIC = "10.1.2.3", "169.254.169.254", "93.184.216.34"

# Each embedded form of PRIVATE and of METADATA (RFC 6052 2.2 for NAT64: bits 64-71 stay zero).
FORMS = {
    "NAT64 well-known": ("64:ff9b::10.1.2.3", "64:ff9b::169.254.169.254"),
    "NAT64 local /96": ("64:ff9b:1::10.1.2.3", "64:ff9b:1::169.254.169.254"),
    "NAT64 local /64": ("64:ff9b:1:0:a:102:300:0", "64:ff9b:1:0:a9:fea9:fe00:0"),
    "NAT64 local /56": ("64:ff9b:1:a:1:203::", "64:ff9b:1:a9:fe:a9fe::"),
    "NAT64 local /48": ("64:ff9b:1:a01:2:300::", "64:ff9b:1:a9fe:a9:fe00::"),
    "6to4": ("2002:a01:203::1", "2002:a9fe:a9fe::1"),
    "IPv4-compatible": ("::10.1.2.3", "::169.254.169.254"),
    "IPv4-mapped": ("::ffff:10.1.2.3", "::ffff:169.254.169.254"),
    "Teredo": ("2001:0:4136:e378:8000:63bf:f5fe:fdfc", "2001:0:4136:e378:8000:63bf:5601:5601"),  # client bits inverted
}
PUBLIC_V6 = ["2606:4700:4700::1111", "2a00:1450:4001:82a::200e", "2001:4860:4860::8888",
             "64:ff9b::93.184.216.34", "::ffff:93.184.216.34"]


def resolves_to(*addresses: str):
    def resolver(host: str, port: int) -> list[str]:
        return list(addresses)

    return resolver


@pytest.mark.parametrize("form", FORMS)
def test_an_embedded_private_address_is_refused_unless_the_operator_allows_private_ones(form: str) -> None:
    embedded = FORMS[form][0]
    assert address_refusal(PRIVATE, allow_private=False) and address_refusal(PRIVATE, allow_private=True) is None
    assert "not a public address" in (address_refusal(embedded, allow_private=False) or "")
    assert address_refusal(embedded, allow_private=True) is None


@pytest.mark.parametrize("allow_private", [False, True])
@pytest.mark.parametrize("form", FORMS)
def test_an_embedded_metadata_address_is_always_refused(form: str, allow_private: bool) -> None:
    embedded = FORMS[form][1]
    assert "cloud metadata address" in (address_refusal(METADATA, allow_private) or "")
    reason = address_refusal(embedded, allow_private)
    assert reason is not None and METADATA in reason
    if allow_private:
        assert "cloud metadata address" in reason
    with pytest.raises(RefusedUrl, match=METADATA):
        resolve_target("https://hooks.example.com/x", guard=True, allow_private=allow_private,
                       resolver=resolves_to(PUBLIC, embedded))


@pytest.mark.parametrize("address", PUBLIC_V6)
def test_public_ipv6_addresses_still_pass(address: str) -> None:
    assert address_refusal(address, allow_private=False) is None
    target = resolve_target("https://hooks.example.com/x", guard=True, allow_private=False,
                            resolver=resolves_to(address, PUBLIC))
    assert target.addresses == (address, PUBLIC)


@pytest.mark.parametrize("address", ["64:ff9b:1::93.184.216.34", "fec0::1"])
def test_ranges_python_calls_global_that_are_not(address: str) -> None:
    """Local-use NAT64 (RFC 8215) and site-local (deprecated) are routable only inside a network."""
    assert "not a public address" in (address_refusal(address, allow_private=False) or "")
    assert address_refusal(address, allow_private=True) is None


class MustNotPost:
    def post(self, target: Target, body: bytes, headers: dict[str, str], timeout: float) -> HttpReply:
        raise AssertionError(f"connected to {target.addresses}")


def test_a_job_webhook_whose_name_resolves_to_nat64_metadata_fails_without_a_connection() -> None:
    record = DeliveryRecord(event_id="e", event_type="dropfit.job.succeeded", job_id="j", message_id="msg_e",
                            channel="webhook-x", kind="webhook", target="https://hooks.example.com/x", per_job=True,
                            body="{}")
    nat64_metadata = resolves_to(FORMS["NAT64 well-known"][1])
    channel = WebhookChannel(record.target, ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",), per_job=True,
                             allow_private=True, poster=MustNotPost(), resolver=nat64_metadata)
    result = channel.send(record, datetime.now(UTC))
    assert result.outcome == "failed" and "cloud metadata" in (result.error or "")
