"""PartSender with a scripted connector: what is retried, what is not, and when the breaker opens."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hibiki_sms_gateway.adapters.metrics import SmsMetrics
from hibiki_sms_gateway.domain.carrier import Carrier
from hibiki_sms_gateway.domain.concatenation import Part, ucs2_parts
from hibiki_sms_gateway.domain.submission import (
    PermanentSubmitError,
    TemporarySubmitError,
    Throttled,
    UncertainSubmitError,
)
from hibiki_sms_gateway.service_layer.sender import BreakerOpen, PartNotSent, PartSender, SendPolicy
from prometheus_client import CollectorRegistry

PART = ucs2_parts("テスト", reference=1)[0]


class ScriptedConnector:
    """Raises the scripted errors in turn, then accepts."""

    name = "smpp:scripted"

    def __init__(self, *errors: Callable[[], Exception]) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def submit(self, destination_e164: str, part: Part, on_wire: object = None) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)()
        return f"id-{self.calls}"


def sender_for(connector: ScriptedConnector, **policy: float) -> tuple[PartSender, CollectorRegistry]:
    registry = CollectorRegistry()
    settings = {
        "attempts": 4,
        "initial_backoff": 0.001,
        "max_backoff": 0.01,
        "breaker_threshold": 3,
        **policy,
    }
    sender = PartSender(
        {c: ("smsc", connector) for c in Carrier},
        SmsMetrics(registry),
        SendPolicy(**settings),  # type: ignore[arg-type]
    )
    return sender, registry


async def test_temporary_errors_are_retried_until_accepted() -> None:
    connector = ScriptedConnector(
        lambda: Throttled("throttled", ""), lambda: TemporarySubmitError("smsc_busy", "")
    )
    sender, registry = sender_for(connector)

    sent = await sender.send(Carrier.DOCOMO, "+819012345678", PART)

    assert (sent.message_id, sent.attempts, connector.calls) == ("id-3", 3, 3)
    labels = {"carrier": "docomo", "code": "throttled"}
    assert registry.get_sample_value("hibiki_sms_gateway_submit_retries_total", labels) == 1


@pytest.mark.parametrize(
    "error", [PermanentSubmitError("smsc_rejected", ""), UncertainSubmitError("submit_timeout", "")]
)
async def test_permanent_and_uncertain_errors_are_never_retried(error: Exception) -> None:
    connector = ScriptedConnector(lambda: error)
    sender, _ = sender_for(connector)

    with pytest.raises(PartNotSent) as failure:
        await sender.send(Carrier.KDDI, "+819012345678", PART)
    assert (failure.value.cause, failure.value.attempts, connector.calls) == (error, 1, 1)


async def test_retries_stop_after_the_configured_attempts() -> None:
    connector = ScriptedConnector(*[lambda: TemporarySubmitError("not_bound", "")] * 10)
    sender, _ = sender_for(connector, breaker_threshold=50)

    with pytest.raises(PartNotSent) as failure:
        await sender.send(Carrier.SOFTBANK, "+819012345678", PART)
    assert isinstance(failure.value.cause, TemporarySubmitError)
    assert (failure.value.attempts, connector.calls) == (4, 4)


async def test_repeated_connector_failures_open_the_breaker_and_stop_calling_the_smsc() -> None:
    connector = ScriptedConnector(*[lambda: TemporarySubmitError("not_bound", "")] * 10)
    sender, registry = sender_for(connector, attempts=6, breaker_threshold=3, breaker_ttl=60)

    with pytest.raises(PartNotSent) as failure:
        await sender.send(Carrier.RAKUTEN, "+819012345678", PART)

    assert isinstance(failure.value.cause, BreakerOpen)

    assert connector.calls == 3  # attempts 4-6 were refused by the open breaker without reaching the SMSC
    assert registry.get_sample_value("hibiki_sms_gateway_circuit_breaker_state", {"connector": "smsc"}) == 2


async def test_throttling_does_not_open_the_breaker() -> None:
    connector = ScriptedConnector(*[lambda: Throttled("throttled", "")] * 5)
    sender, _ = sender_for(connector, attempts=8, breaker_threshold=2)

    sent = await sender.send(Carrier.DOCOMO, "+819012345678", PART)

    assert sent.attempts == 6
