"""The number-portability (MNP) lookup against a real HTTP server on 127.0.0.1, its wiring, the dev table."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hibiki.sms.v1 import sms_results_pb2 as pb
from hibiki_runtime.service import ServiceRuntime
from hibiki_sms_gateway.adapters.carrier_table import StaticCarrierTable
from hibiki_sms_gateway.adapters.metrics import SmsMetrics
from hibiki_sms_gateway.adapters.number_portability import NumberPortabilityLookup, TtlCache
from hibiki_sms_gateway.domain.carrier import Carrier, parse_carrier
from hibiki_sms_gateway.domain.cooldown import CooldownPolicy
from hibiki_sms_gateway.entrypoints import main
from hibiki_sms_gateway.service_layer.dispatch import AdmissionPolicy, Dispatcher
from hibiki_sms_gateway.service_layer.sender import PartSender, SendPolicy
from hibiki_sms_gateway.settings import _DEV_CARRIER_TABLE, SmsGatewaySettings
from hibiki_sms_gateway.smsc_simulator.scenario import DEV_SCENARIO, Scenario
from prometheus_client import CollectorRegistry

from .conftest import Gateway, free_port

DOCOMO = "+819012345678"  # docomo by the static table
PORTED = "+819087654321"  # au by the static table's +81908 range
TABLE = StaticCarrierTable(_DEV_CARRIER_TABLE)
LOOKUPS = "hibiki_sms_gateway_carrier_lookups_total"
ERRORS = "hibiki_sms_gateway_carrier_lookup_errors_total"
DURATION = "hibiki_sms_gateway_carrier_lookup_duration_seconds_count"


@dataclass
class StubMnp:
    """A number-portability service: answers per number (default softbank), can be slow; counts requests."""

    answers: dict[str, tuple[int, str]] = field(default_factory=dict)
    delay: float = 0.0
    numbers: list[str] = field(default_factory=list)
    raw_queries: list[str] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)
    url: str = ""

    def answer(self, number: str, status: int = 200, carrier: str | None = None, body: str = "") -> None:
        self.answers[number] = (status, body or json.dumps({"carrier": carrier}))

    async def carrier(self, request: web.Request) -> web.Response:
        number = request.query["number"]
        self.numbers.append(number)
        self.raw_queries.append(request.rel_url.raw_query_string)
        self.authorizations.append(request.headers.get("Authorization"))
        if self.delay:
            await asyncio.sleep(self.delay)
        status, body = self.answers.get(number, (200, json.dumps({"carrier": "softbank"})))
        return web.Response(status=status, text=body, content_type="application/json")


@pytest.fixture
async def stub() -> AsyncIterator[StubMnp]:
    mnp = StubMnp()
    app = web.Application()
    app.router.add_get("/v1/carrier", mnp.carrier)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    mnp.url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1/carrier?number={{e164}}"
    yield mnp
    await runner.cleanup()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Made:
    lookup: NumberPortabilityLookup
    registry: CollectorRegistry

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


Factory = Callable[..., Awaitable[Made]]


@pytest.fixture
async def make(stub: StubMnp) -> AsyncIterator[Factory]:
    """Started lookups against the stub (stopped after the test); keyword arguments go to the constructor."""
    made: list[NumberPortabilityLookup] = []

    async def factory(**kwargs: Any) -> Made:
        registry = CollectorRegistry()
        options: dict[str, Any] = {"fallback": TABLE, "metrics": SmsMetrics(registry), **kwargs}
        lookup = NumberPortabilityLookup(options.pop("url", stub.url), **options)
        await lookup.start()
        made.append(lookup)
        return Made(lookup, registry)

    yield factory
    for lookup in made:
        await lookup.stop()


# -- answers and cache ---------------------------------------------------------------------------------
async def test_the_service_answers_which_network_serves_a_ported_number(stub: StubMnp, make: Factory) -> None:
    stub.answer(PORTED, carrier="rakuten")
    stub.answer(DOCOMO, carrier="au")
    made = await make()
    assert await made.lookup.resolve(PORTED) == Carrier.RAKUTEN  # the table would say au
    assert await made.lookup.resolve(DOCOMO) == Carrier.KDDI  # "au" is KDDI
    assert stub.numbers == [PORTED, DOCOMO]
    assert "number=%2B819087654321" in stub.raw_queries[0]  # the + is URL-quoted
    assert made.metric(LOOKUPS, result="answered") == 2
    assert made.metric(DURATION) == 2


async def test_an_answer_is_cached_and_not_asked_again(stub: StubMnp, make: Factory) -> None:
    made = await make()
    assert await made.lookup.resolve(DOCOMO) == Carrier.SOFTBANK
    assert await made.lookup.resolve(DOCOMO) == Carrier.SOFTBANK
    assert stub.numbers == [DOCOMO]
    assert made.metric(LOOKUPS, result="answered") == 1
    assert made.metric(LOOKUPS, result="cached") == 1
    assert made.metric(DURATION) == 1


async def test_concurrent_lookups_of_one_number_share_one_request(stub: StubMnp, make: Factory) -> None:
    stub.delay = 0.2
    stub.answer(DOCOMO, carrier="rakuten")
    made = await make()
    found = await asyncio.gather(*(made.lookup.resolve(DOCOMO) for _ in range(5)))
    assert found == [Carrier.RAKUTEN] * 5
    assert stub.numbers == [DOCOMO]
    assert made.metric(LOOKUPS, result="answered") == 1
    assert made.metric(LOOKUPS, result="coalesced") == 4


async def test_a_cancelled_caller_does_not_cancel_the_lookup_others_wait_for(
    stub: StubMnp, make: Factory
) -> None:
    stub.delay = 0.2
    made = await make()
    first = asyncio.create_task(made.lookup.resolve(DOCOMO))
    second = asyncio.create_task(made.lookup.resolve(DOCOMO))
    await asyncio.sleep(0.05)
    first.cancel()
    assert await second == Carrier.SOFTBANK
    assert first.cancelled()
    assert stub.numbers == [DOCOMO]


async def test_lookups_of_different_numbers_run_concurrently(stub: StubMnp, make: Factory) -> None:
    stub.delay = 0.3
    made = await make()
    numbers = [f"+8190111100{n:02d}" for n in range(8)]
    started = time.monotonic()
    assert await asyncio.gather(*(made.lookup.resolve(n) for n in numbers)) == [Carrier.SOFTBANK] * 8
    assert time.monotonic() - started < 1.5  # one after another would take 2.4 s
    assert sorted(stub.numbers) == numbers


@pytest.mark.parametrize("answer", [{"status": 404}, {"carrier": "willcom"}, {"carrier": "none"}])
async def test_no_supported_network_is_an_answer_and_cached_for_a_shorter_time(
    stub: StubMnp, make: Factory, answer: dict[str, Any]
) -> None:
    stub.answer(DOCOMO, **answer)
    clock = Clock()
    made = await make(clock=clock, cache_ttl=3600, unsupported_ttl=60)
    assert await made.lookup.resolve(DOCOMO) is None  # not the table's docomo
    clock.now += 59
    assert await made.lookup.resolve(DOCOMO) is None
    assert stub.numbers == [DOCOMO]
    clock.now += 1
    assert await made.lookup.resolve(DOCOMO) is None
    assert stub.numbers == [DOCOMO, DOCOMO]
    assert made.metric(LOOKUPS, result="unsupported") == 2
    assert made.metric(LOOKUPS, result="cached") == 1
    assert made.metric(LOOKUPS, result="fallback") == 0


async def test_answers_expire_after_the_cache_ttl(stub: StubMnp, make: Factory) -> None:
    clock = Clock()
    made = await make(clock=clock, cache_ttl=600)
    stub.answer(DOCOMO, carrier="docomo")
    assert await made.lookup.resolve(DOCOMO) == Carrier.DOCOMO
    stub.answer(DOCOMO, carrier="softbank")  # the number moved to SoftBank
    clock.now += 599
    assert await made.lookup.resolve(DOCOMO) == Carrier.DOCOMO
    clock.now += 1
    assert await made.lookup.resolve(DOCOMO) == Carrier.SOFTBANK
    assert stub.numbers == [DOCOMO, DOCOMO]


async def test_the_cache_is_bounded_and_evicts_the_least_recently_used(stub: StubMnp, make: Factory) -> None:
    made = await make(cache_size=2)
    a, b, c = "+819011110001", "+819011110002", "+819011110003"
    for number in (a, b, a, c):  # a is used again before c comes in: b is the least recently used
        await made.lookup.resolve(number)
    assert stub.numbers == [a, b, c]
    await made.lookup.resolve(a)
    await made.lookup.resolve(c)
    assert stub.numbers == [a, b, c]
    await made.lookup.resolve(b)
    assert stub.numbers == [a, b, c, b]


def test_the_ttl_cache_never_holds_more_than_its_size() -> None:
    cache = TtlCache(3)
    for n in range(100):
        cache.put(f"+81901111{n:04d}", Carrier.DOCOMO, expires_at=10.0)
        assert len(cache) <= 3
    assert cache.get("+819011110099", now=9.0) is not None
    assert cache.get("+819011110000", now=9.0) is None
    assert cache.get("+819011110099", now=10.0) is None  # expired, and dropped
    assert len(cache) == 2
    with pytest.raises(ValueError):
        TtlCache(0)


# -- failures: the static table answers ------------------------------------------------------------------
async def test_a_timeout_falls_back_to_the_static_table(stub: StubMnp, make: Factory) -> None:
    stub.delay = 0.5
    stub.answer(PORTED, carrier="docomo")
    made = await make(timeout=0.1)
    started = time.monotonic()
    assert await made.lookup.resolve(PORTED) == Carrier.KDDI  # the table's +81908 range
    assert time.monotonic() - started < 0.4
    assert made.metric(LOOKUPS, result="fallback") == 1
    assert made.metric(ERRORS, cause="timeout") == 1
    assert made.metric(DURATION) == 1


@pytest.mark.parametrize(
    ("status", "body", "cause"),
    [
        (500, "", "http_5xx"),
        (503, "", "http_5xx"),
        (429, "", "http_429"),
        (401, "", "http_4xx"),
        (200, "<html>maintenance</html>", "bad_answer"),
        (200, '{"carrier": 3}', "bad_answer"),
        (200, '["docomo"]', "bad_answer"),
        (200, "{}", "bad_answer"),
    ],
)
async def test_an_error_or_unreadable_answer_falls_back_and_is_not_cached(
    stub: StubMnp, make: Factory, status: int, body: str, cause: str
) -> None:
    stub.answers[PORTED] = (status, body or "oops")
    made = await make()
    assert await made.lookup.resolve(PORTED) == Carrier.KDDI
    assert made.metric(LOOKUPS, result="fallback") == 1
    assert made.metric(ERRORS, cause=cause) == 1
    stub.answer(PORTED, carrier="docomo")  # the service recovered: asked again
    assert await made.lookup.resolve(PORTED) == Carrier.DOCOMO
    assert stub.numbers == [PORTED, PORTED]


async def test_concurrent_lookups_of_a_failing_number_all_fall_back(stub: StubMnp, make: Factory) -> None:
    stub.delay = 0.1
    stub.answers[PORTED] = (500, "busy")
    made = await make()
    assert await asyncio.gather(*(made.lookup.resolve(PORTED) for _ in range(3))) == [Carrier.KDDI] * 3
    assert stub.numbers == [PORTED]
    assert made.metric(LOOKUPS, result="fallback") == 3
    assert made.metric(ERRORS, cause="http_5xx") == 1


async def test_a_service_that_cannot_be_reached_falls_back(make: Factory) -> None:
    made = await make(url=f"http://127.0.0.1:{free_port()}/carrier?number={{e164}}")
    assert await made.lookup.resolve(DOCOMO) == Carrier.DOCOMO
    assert made.metric(ERRORS, cause="connection") == 1


async def test_before_start_the_static_table_answers() -> None:
    registry = CollectorRegistry()
    lookup = NumberPortabilityLookup(
        "http://127.0.0.1:1/?n={e164}", fallback=TABLE, metrics=SmsMetrics(registry)
    )
    assert await lookup.resolve(PORTED) == Carrier.KDDI
    assert registry.get_sample_value(ERRORS, {"cause": "not_started"}) == 1
    await lookup.stop()  # without start: nothing to close


async def test_failures_are_warned_about_at_most_once_per_interval(
    stub: StubMnp, make: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    made = await make(clock=clock, warn_every=60)
    for number in ("+819011110001", "+819011110002", "+819011110003"):
        stub.answers[number] = (500, "busy")
    caplog.set_level(logging.WARNING, logger="hibiki.sms.carrier")
    await made.lookup.resolve("+819011110001")
    clock.now += 30
    await made.lookup.resolve("+819011110002")
    assert len(caplog.records) == 1
    clock.now += 30
    await made.lookup.resolve("+819011110003")
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2
    assert "http_5xx" in messages[1] and "2 failed lookups since the last warning" in messages[1]
    assert not any("+8190" in message or "8190111100" in message for message in messages)


# -- requests ------------------------------------------------------------------------------------------
async def test_the_token_is_sent_as_a_bearer_authorization(stub: StubMnp, make: Factory) -> None:
    with_token = await make(token="s3cret")
    await with_token.lookup.resolve(DOCOMO)
    without = await make()
    await without.lookup.resolve(PORTED)
    assert stub.authorizations == ["Bearer s3cret", None]


@pytest.mark.parametrize("url", ["https://mnp.example.jp/v1/carrier", "ftp://mnp.example.jp/{e164}"])
def test_the_url_template_must_name_the_number_and_be_http(url: str) -> None:
    with pytest.raises(ValueError, match="HIBIKI_SMS_MNP_URL"):
        NumberPortabilityLookup(url, fallback=TABLE, metrics=SmsMetrics(CollectorRegistry()))


# -- admission -----------------------------------------------------------------------------------------
async def test_admission_looks_carriers_of_a_batch_up_concurrently_and_in_order(
    gateway: Gateway, stub: StubMnp, make: Factory
) -> None:
    """Eight recipients' lookups overlap; two requests to one recipient share a lookup, and the first one is
    sent while the second is refused by the cooldown, as when they were decided one after the other."""
    stub.delay = 0.3
    made = await make()
    metrics = SmsMetrics(CollectorRegistry())
    dispatcher = Dispatcher(
        gateway.sessions,
        made.lookup,
        PartSender({}, metrics, SendPolicy()),
        gateway.receipts,
        metrics,
        lambda: None,
        AdmissionPolicy(cooldown=CooldownPolicy(min_interval=timedelta(seconds=60))),
    )
    recipients = [f"+8190222200{n:02d}" for n in range(8)]
    stub.answer(recipients[0], carrier="none")
    requests = [gateway.request(f"mnp-batch-{n}", recipient) for n, recipient in enumerate(recipients)]
    requests += [gateway.request("mnp-batch-again", recipients[1])]
    started = time.monotonic()
    admission = await dispatcher.admit(requests)
    assert time.monotonic() - started < 1.5  # one after another: 2.4 s
    assert sorted(stub.numbers) == recipients
    admitted = {entry.message.request_id: entry.carrier for entry in admission.admitted}
    assert admitted == {f"mnp-batch-{n}": Carrier.SOFTBANK for n in range(1, 8)}
    refused = {
        request_id: (await gateway.results_for(request_id))[0].sms_rejected.reason
        for request_id in ("mnp-batch-0", "mnp-batch-again")
    }
    assert refused == {
        "mnp-batch-0": pb.REJECT_REASON_UNSUPPORTED_CARRIER,
        "mnp-batch-again": pb.REJECT_REASON_RECIPIENT_RATE_LIMITED,
    }


# -- wiring --------------------------------------------------------------------------------------------
def _record_hooks(monkeypatch: pytest.MonkeyPatch) -> tuple[list[Any], list[Any]]:
    started: list[Any] = []
    stopped: list[Any] = []
    monkeypatch.setattr(ServiceRuntime, "on_startup", lambda _self, hook: started.append(hook))
    monkeypatch.setattr(ServiceRuntime, "on_shutdown", lambda _self, hook: stopped.append(hook))
    return started, stopped


def _spy_resolver(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    real = main.Dispatcher

    def spy(*args: Any, **kwargs: Any) -> Dispatcher:
        seen["resolver"] = args[1]
        return real(*args, **kwargs)

    monkeypatch.setattr(main, "Dispatcher", spy)
    return seen


async def test_build_runtime_with_an_mnp_url_resolves_carriers_with_the_lookup(
    stub: StubMnp, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("HIBIKI_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HIBIKI_SMS_MNP_URL", stub.url)
    monkeypatch.setenv("HIBIKI_SMS_MNP_TOKEN", "wired-token")
    monkeypatch.setenv("HIBIKI_SMS_MNP_TIMEOUT_SECONDS", "0.5")
    started, stopped = _record_hooks(monkeypatch)
    seen = _spy_resolver(monkeypatch)
    caplog.set_level(logging.WARNING)
    runtime = main.build_runtime()
    lookup = seen["resolver"]
    assert isinstance(lookup, NumberPortabilityLookup)
    assert isinstance(lookup.fallback, StaticCarrierTable)
    assert lookup.start in started and lookup.stop in stopped
    assert not [hook for hook in started if getattr(hook, "__name__", "") == "warn"]
    await lookup.start()
    stub.answer(PORTED, carrier="softbank")
    assert await lookup.resolve(PORTED) == Carrier.SOFTBANK
    assert stub.authorizations == ["Bearer wired-token"]
    assert runtime.registry.get_sample_value(LOOKUPS, {"result": "answered"}) == 1
    await lookup.stop()
    await runtime.engine.dispose()
    assert not [r for r in caplog.records if main.STATIC_TABLE_WARNING in r.getMessage()]


async def test_build_runtime_without_an_mnp_url_uses_the_static_table_and_warns_once_at_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("HIBIKI_SMS_MNP_URL", raising=False)
    started, _stopped = _record_hooks(monkeypatch)
    seen = _spy_resolver(monkeypatch)
    runtime = main.build_runtime(SmsGatewaySettings(data_dir=tmp_path))
    assert isinstance(seen["resolver"], StaticCarrierTable)
    assert await seen["resolver"].resolve(PORTED) == Carrier.KDDI
    caplog.set_level(logging.WARNING, logger="hibiki.sms")
    # Not while wiring (logging is configured at start, after build_runtime), but once a start hook runs.
    assert not [r for r in caplog.records if r.getMessage() == main.STATIC_TABLE_WARNING]
    (warn,) = [hook for hook in started if getattr(hook, "__name__", "") == "warn"]
    await warn()
    warnings = [r for r in caplog.records if r.getMessage() == main.STATIC_TABLE_WARNING]
    assert [(r.levelno, r.name) for r in warnings] == [(logging.WARNING, "hibiki.sms")]
    assert "development only" in main.STATIC_TABLE_WARNING and "070/080/090" in main.STATIC_TABLE_WARNING
    await runtime.engine.dispose()


# -- the development table -------------------------------------------------------------------------------
async def test_the_development_table_has_all_four_networks() -> None:
    table = StaticCarrierTable(SmsGatewaySettings().sms_carrier_table)
    found = {
        await table.resolve(number)
        for number in ("+817012345678", "+817081234567", "+818012345678", "+818081234567", "+819012345678")
    }
    assert found == set(Carrier)
    assert await table.resolve("+819081234567") == Carrier.KDDI  # a sub-range: the longest prefix wins
    assert await table.resolve("+819012345678") == Carrier.DOCOMO


def test_the_development_table_and_the_smsc_dev_scenario_agree() -> None:
    """`make run` gives the service the scenario file; run without it, the default table names the same."""
    rules = {rule.prefix: parse_carrier(rule.carrier) for rule in Scenario.load(DEV_SCENARIO).rules}
    for prefix, carrier in _DEV_CARRIER_TABLE.items():
        assert rules.get(prefix) == parse_carrier(carrier), prefix
