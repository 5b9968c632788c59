"""Process entry point of the sms-gateway service: wires domain, adapters and the runtime together."""

from __future__ import annotations

import logging
from datetime import timedelta
from functools import partial
from pathlib import Path
from urllib.parse import quote

from hibiki.sms.v1 import sms_box_service_pb2, sms_box_service_pb2_grpc
from hibiki_runtime.events import SMS_REQUESTS
from hibiki_runtime.instances import Instance
from hibiki_runtime.service import ServiceRuntime

from hibiki_sms_gateway.adapters.carrier_table import StaticCarrierTable
from hibiki_sms_gateway.adapters.kannel_connector import KannelConnector
from hibiki_sms_gateway.adapters.metrics import SmsMetrics
from hibiki_sms_gateway.adapters.number_portability import NumberPortabilityLookup
from hibiki_sms_gateway.adapters.smpp_connector import SmppConnector
from hibiki_sms_gateway.adapters.smpp_receiver import SmppAccount
from hibiki_sms_gateway.adapters.tables import sms_instances
from hibiki_sms_gateway.domain.carrier import Carrier, CarrierResolver, parse_carrier
from hibiki_sms_gateway.domain.cooldown import CooldownPolicy
from hibiki_sms_gateway.entrypoints import sms_requests_consumer
from hibiki_sms_gateway.entrypoints.grpc_api import SmsBoxServicer
from hibiki_sms_gateway.entrypoints.http_receipts import receipt_routes
from hibiki_sms_gateway.entrypoints.http_short_links import short_link_routes
from hibiki_sms_gateway.service_layer.boxes import BoxService
from hibiki_sms_gateway.service_layer.dispatch import AdmissionPolicy, Dispatcher, PipelinedDispatch
from hibiki_sms_gateway.service_layer.opt_outs import OptOutService
from hibiki_sms_gateway.service_layer.receipts import ReceiptBook
from hibiki_sms_gateway.service_layer.recovery import Recovery
from hibiki_sms_gateway.service_layer.retention import RetentionJob
from hibiki_sms_gateway.service_layer.sender import Connector, PartSender, SendPolicy
from hibiki_sms_gateway.service_layer.short_links import ShortLinkPolicy, ShortLinkService
from hibiki_sms_gateway.settings import SmsGatewaySettings

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
log = logging.getLogger("hibiki.sms")


def _send_policy(settings: SmsGatewaySettings) -> SendPolicy:
    rates = {
        carrier: rate
        for name, rate in settings.sms_rate_per_second.items()
        if (carrier := parse_carrier(name))
    }
    return SendPolicy(
        default_rate_per_second=settings.sms_default_rate_per_second,
        rate_per_second=rates,
        attempts=settings.sms_submit_attempts,
        initial_backoff=settings.sms_backoff_initial_seconds,
        max_backoff=settings.sms_backoff_max_seconds,
        breaker_threshold=settings.sms_breaker_threshold,
        breaker_ttl=settings.sms_breaker_ttl_seconds,
    )


def _connectors(
    runtime: ServiceRuntime, settings: SmsGatewaySettings, receipts: ReceiptBook
) -> dict[Carrier, tuple[str, Connector]]:
    """The connector of each carrier (SMPP unless routed to the HTTP aggregator), started with the service."""
    receipt_token = settings.kannel_receipt_token.get_secret_value()
    account = SmppAccount(
        settings.smpp_host,
        settings.smpp_port,
        settings.smpp_system_id,
        settings.smpp_password.get_secret_value(),
    )
    smpp = SmppConnector(
        account,
        source_addr=settings.smpp_source_addr,
        on_receipts=partial(receipts.record, account.connector),
        window=settings.smpp_window,
        submit_timeout=settings.smpp_submit_timeout_seconds,
    )
    kannel = KannelConnector(
        sendsms_url=settings.kannel_sendsms_url,
        username=settings.kannel_username,
        password=settings.kannel_password.get_secret_value(),
        source_addr=settings.smpp_source_addr,
        receipt_url=f"{settings.kannel_receipt_url}?token={quote(receipt_token, safe='')}",
        timeout=settings.kannel_timeout_seconds,
    )
    available: dict[str, SmppConnector | KannelConnector] = {"smpp": smpp, "kannel": kannel}
    routed = {parse_carrier(key): name for key, name in settings.sms_carrier_connectors.items()}
    routes: dict[Carrier, tuple[str, Connector]] = {}
    for carrier in Carrier:
        name = routed.get(carrier, "smpp")
        if name not in available:
            raise ValueError(f"HIBIKI_SMS_CARRIER_CONNECTORS: unknown connector {name!r} for {carrier.value}")
        routes[carrier] = (name, available[name])
    for used in {name for name, _ in routes.values()}:
        runtime.on_startup(available[used].start)
        runtime.on_shutdown(available[used].stop)
    return routes


STATIC_TABLE_WARNING = (
    "no number-portability lookup (HIBIKI_SMS_MNP_URL): carriers come from the static prefix table, which"
    " is for development only: docomo, au, SoftBank and Rakuten all hold 070/080/090 numbers (number"
    " portability), so some SMS would go to the wrong network or be refused"
)


def _carrier_resolver(
    runtime: ServiceRuntime, settings: SmsGatewaySettings, metrics: SmsMetrics
) -> CarrierResolver:
    """The number-portability lookup with the static table as its fallback, or the static table alone."""
    table = (
        StaticCarrierTable.from_scenario(settings.sms_carrier_table_file)
        if settings.sms_carrier_table_file
        else StaticCarrierTable(settings.sms_carrier_table)
    )
    if not settings.sms_mnp_url:

        async def warn() -> None:  # at start, once logging is configured
            log.warning(STATIC_TABLE_WARNING)

        runtime.on_startup(warn)
        return table
    lookup = NumberPortabilityLookup(
        settings.sms_mnp_url,
        fallback=table,
        metrics=metrics,
        token=settings.sms_mnp_token.get_secret_value(),
        timeout=settings.sms_mnp_timeout_seconds,
        cache_ttl=settings.sms_mnp_cache_ttl_seconds,
        cache_size=settings.sms_mnp_cache_size,
    )
    runtime.on_startup(lookup.start)
    runtime.on_shutdown(lookup.stop)
    return lookup


def build_runtime(settings: SmsGatewaySettings | None = None) -> ServiceRuntime:
    """Wire the sms-gateway service onto the shared runtime."""
    settings = settings or SmsGatewaySettings()
    runtime = ServiceRuntime(settings, migrations_dir=MIGRATIONS)
    metrics = SmsMetrics(runtime.registry, runtime.metrics.prefix)
    notify = runtime.relay.notify
    instance_timeout = timedelta(seconds=settings.sms_instance_timeout_seconds)
    receipts = ReceiptBook(runtime.sessions, metrics, notify, instance_timeout=instance_timeout)
    sender = PartSender(_connectors(runtime, settings, receipts), metrics, _send_policy(settings))
    # The configured rates are the deployment's: each replica sends its share (see PartitionAssignment).
    runtime.assignment.listen(lambda assignment: sender.share(assignment.share(SMS_REQUESTS)))
    resolver = _carrier_resolver(runtime, settings, metrics)
    policy = AdmissionPolicy(
        allow_m2m=settings.sms_allow_m2m,
        cooldown=CooldownPolicy(
            min_interval=timedelta(seconds=settings.sms_cooldown_seconds),
            max_sends=settings.sms_cooldown_max_sends,
            window=timedelta(hours=settings.sms_cooldown_window_hours),
        ),
    )
    short_links = (
        ShortLinkPolicy(
            settings.sms_short_link_base_url, timedelta(days=settings.sms_short_link_lifetime_days)
        )
        if settings.sms_short_link_base_url
        else None
    )
    instance = Instance(runtime.sessions, sms_instances)
    runtime.on_startup(instance.register)
    runtime.every("sms-heartbeat", settings.sms_heartbeat_seconds, instance.heartbeat, first_now=False)
    dispatcher = Dispatcher(
        runtime.sessions,
        resolver,
        sender,
        receipts,
        metrics,
        notify,
        policy,
        send_budget_seconds=settings.sms_send_budget_seconds,
        short_links=short_links,
        owner=instance.instance_id,
        in_flight=settings.smpp_window,
    )
    recovery = Recovery(
        runtime.sessions,
        metrics,
        notify,
        instance.instance_id,
        instance_timeout=instance_timeout,
        reconcile_grace=timedelta(seconds=settings.sms_reconcile_seconds),
        stuck_after=timedelta(seconds=settings.sms_uncertain_after_seconds),
    )
    servicer = SmsBoxServicer(
        BoxService(
            runtime.sessions,
            max_characters=settings.sms_max_characters,
            short_link_base=settings.sms_short_link_base_url,
        ),
        OptOutService(runtime.sessions),
    )
    runtime.add_grpc_service(
        sms_box_service_pb2.DESCRIPTOR.services_by_name["SmsBoxService"].full_name,
        lambda server: sms_box_service_pb2_grpc.add_SmsBoxServiceServicer_to_server(servicer, server),
    )

    consumer = PipelinedDispatch(dispatcher)

    async def maintain() -> None:
        await receipts.apply_pending()
        await receipts.reconcile()
        await recovery.sweep()
        consumer.resume(await recovery.take_over_queued(own_stalled_after=instance_timeout))
        await dispatcher.retry_unrecorded()

    if receipt_token := settings.kannel_receipt_token.get_secret_value():
        runtime.http.add_routes(receipt_routes(receipts, receipt_token))
    if short_links is not None:
        runtime.http.add_routes(short_link_routes(ShortLinkService(runtime.sessions, metrics, notify)))
    runtime.every("sms-maintenance", settings.sms_sweep_interval_seconds, maintain)
    runtime.add_task("sms-receipts", receipts.apply_arrived_forever)
    retention = RetentionJob(
        runtime.sessions,
        metrics,
        days=settings.sms_retention_days,
        batch_size=settings.sms_retention_batch,
    )
    runtime.every("sms-retention", settings.sms_retention_interval_seconds, retention.run_once)
    runtime.consume(sms_requests_consumer.TRANSLATORS, consumer)
    runtime.on_drain(consumer.drain)
    runtime.on_shutdown(instance.leave)  # after the drain: what is still queued is taken over at once
    runtime.on_shutdown(dispatcher.close)
    runtime.on_shutdown(receipts.close)
    return runtime


def main() -> None:
    build_runtime().run()
