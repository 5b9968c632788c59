"""`hibiki-dev run`: the whole system on one machine with embedded defaults (what `make run` starts).

Broker, SMSC simulator, the four services, the demo tenant (provisioned through the public gRPC APIs) and
gentle simulated traffic against it; Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import sys
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from types import FrameType
from zoneinfo import ZoneInfo

from hibiki_runtime.events import ALL_TOPICS
from hibiki_runtime.kafka import ensure_topics

from hibiki_devstack import demo
from hibiki_devstack.infra import Broker, kafka_broker, postgres_server, wait_for_port
from hibiki_devstack.provision import ProvisioningFailed, provision_demo_tenant
from hibiki_devstack.simulators import (
    RTP_PORT,
    SIP_PORT,
    SMPP_PORT,
    dev_smsc_scenario,
    media_gateway_env,
    sms_gateway_env,
    smsc_simulator,
    telephony_simulator_script,
    telephony_traffic,
)
from hibiki_devstack.stack import ServiceFailed, ServiceSpec, Stack, default_services

DEV_TENANT = demo.TENANT
UP_LINE = "Hibiki is up"  # tests wait for this


class StartupFailed(RuntimeError):
    """Something the local system needs is not available; the message says what and how to fix it."""


def _say(line: str) -> None:
    print(line, flush=True)


def write_dev_tokens(path: Path) -> dict[str, str]:
    """Bearer tokens for the local run (operator and viewer of the demo tenant), kept across runs."""
    if path.exists():
        tokens: dict[str, dict[str, str]] = json.loads(path.read_text())
    else:
        tokens = {
            secrets.token_urlsafe(24): {"tenant_id": DEV_TENANT, "role": role, "subject": f"dev-{role}"}
            for role in ("operator", "viewer", "platform")
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(tokens, indent=2))
        path.chmod(0o600)
    return {entry["role"]: token for token, entry in tokens.items()}


def busy_ports(ports: list[int], udp: list[int] | None = None) -> list[int]:
    """The ports among `ports` (TCP) and `udp` (UDP and TCP) that something on 127.0.0.1 already holds.

    TCP is probed with SO_REUSEADDR, as the servers bind: connections of a stopped `make run` that linger in
    TIME_WAIT do not hold a port, a socket that listens (or is bound without it) does.
    """
    busy = []
    for port, kinds in [
        *((p, (socket.SOCK_STREAM,)) for p in ports),
        *((p, (socket.SOCK_DGRAM, socket.SOCK_STREAM)) for p in udp or []),
    ]:
        for kind in kinds:
            with socket.socket(socket.AF_INET, kind) as sock:
                if kind == socket.SOCK_STREAM:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    busy.append(port)
                    break
    return busy


def what_to_look_at(
    specs: dict[str, ServiceSpec],
    tokens: dict[str, str],
    data_dir: Path,
    today: str,
    traffic: str,
    sip_port: int = SIP_PORT,
) -> list[str]:
    """The lines printed once the system is up: token, demo number, example commands, metrics URLs.

    The examples use what the project installs: curl for the CSV, and the `hibiki` console (in the virtualenv
    that runs this) for the gRPC APIs, pointed at the endpoints of this run."""
    report = specs["reporting"]
    number = demo.DIALED_NUMBER
    auth = '-H "authorization: Bearer $HIBIKI_TOKEN"'
    endpoints = " ".join(
        f"HIBIKI_{variable}_ENDPOINT=127.0.0.1:{specs[name].grpc_port}"
        for variable, name in (
            ("GUIDANCE", "guidance-tts"), ("ROUTING", "routing"),
            ("SMS", "sms-gateway"), ("REPORTING", "reporting"),
        )
        if name in specs
    )  # fmt: skip
    ground_truth = data_dir / "ground-truth.jsonl"
    days = f"--from {today} --to {today}"
    return [
        f"  demo tenant '{DEV_TENANT}': {number} plays a menu (1 = URL by SMS, 2 = operator); {traffic}",
        f"  call it: sip:{number}@127.0.0.1:{sip_port} (UDP or TCP) from a softphone, e.g."
        f" baresip -e 'd sip:{number}@127.0.0.1:{sip_port}' (see README: Call the demo)",
        f"  operator token: {tokens['operator']}   (all tokens: {data_dir / 'dev-tokens.json'})",
        "  try:",
        f'    export PATH="{Path(sys.executable).parent}:$PATH" HIBIKI_TOKEN={tokens["operator"]}',
        f"    export {endpoints}",
        f"    curl {auth} "
        f'"http://127.0.0.1:{report.http_port}/reports/daily.csv?from={today}&to={today}&encoding=utf-8"',
        f"    hibiki report daily {days} --dialed-number {number}",
        # The last simulated caller promised an SMS (python: the virtualenv's, on the PATH set above).
        '    CALLER=$(python -c \'import json,sys; print([c["caller_number"] for c in'
        f' map(json.loads, open(sys.argv[1])) if c.get("sms_promised")][-1])\' {ground_truth})',
        f'    hibiki report trace-caller "$CALLER" {days}',
        f"    hibiki routing show {demo.FLOW_NAME}        # a flow, a guidance or an SMS box by its name",
        "  metrics: " + "  ".join(f"http://127.0.0.1:{s.http_port}/metrics" for s in specs.values()),
        f"  logs: {data_dir / 'log'}/",
    ]


def _stop_like_ctrl_c(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir).resolve()
    log_dir = data_dir / "log"
    # Ctrl-C must stop everything even when started from a shell that ignores SIGINT for background jobs.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _stop_like_ctrl_c)
    exit_code = 0
    with contextlib.ExitStack() as resources:
        try:
            _start_and_supervise(args, data_dir, log_dir, resources)
        except KeyboardInterrupt:
            _say("\nstopping… (simulated callers hang up first, then the services drain)")
        except (StartupFailed, ServiceFailed, ProvisioningFailed) as failure:
            _say(f"✗ {failure}")
            _say("stopping…")
            exit_code = 1
        # Stopping must finish: a second Ctrl-C (or SIGTERM) must not abandon the children.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _say("stopped.")
    return exit_code


def _start_and_supervise(
    args: argparse.Namespace, data_dir: Path, log_dir: Path, resources: contextlib.ExitStack
) -> None:
    started = time.monotonic()
    specs = {spec.name: spec for spec in default_services(args.port_offset)}
    smpp_port, sip_port = SMPP_PORT + args.port_offset, SIP_PORT + args.port_offset
    _refuse_busy_ports(
        [args.broker_port, smpp_port, *(p for s in specs.values() for p in (s.grpc_port, s.http_port) if p)],
        udp=[sip_port],
    )
    _say(f"Hibiki: starting the local system (data in {data_dir}, logs in {log_dir})")
    log_dir.mkdir(parents=True, exist_ok=True)
    broker = _start_broker(args, log_dir, resources)
    tokens = write_dev_tokens(data_dir / "dev-tokens.json")
    guidance_port = specs["guidance-tts"].grpc_port or 0
    sms_port = specs["sms-gateway"].grpc_port or 0
    service_env = {
        "routing": {
            # Publishing records the flow's guidances in guidance-tts, so they cannot be deleted in use;
            # validating and publishing check that its guidances and SMS boxes exist.
            "HIBIKI_GUIDANCE_ADDRESS": f"127.0.0.1:{guidance_port}",
            "HIBIKI_GUIDANCE_TOKENS": json.dumps({DEV_TENANT: tokens["platform"]}),
            "HIBIKI_SMS_ADDRESS": f"127.0.0.1:{sms_port}",
            "HIBIKI_SMS_TOKENS": json.dumps({DEV_TENANT: tokens["platform"]}),
        },
        "sms-gateway": sms_gateway_env(smpp_port, args.smsc_scenario),
        "media-gateway": media_gateway_env(
            sip_port,
            RTP_PORT + args.port_offset,
            specs["guidance-tts"].http_port or 0,
            DEV_TENANT,
            demo.DIALED_NUMBER,
            tokens["platform"],
        ),
    }
    if args.postgres:
        postgres = resources.enter_context(postgres_server(data_dir / "postgres"))
        for name in specs:
            database = name.replace("-", "_")
            postgres.create_database(database)
            service_env.setdefault(name, {})["HIBIKI_DATABASE_URL"] = postgres.url(database)
        _say("  ✓ postgres      embedded PostgreSQL, one database per service")
    specs = {name: replace(spec, env=service_env.get(name, {})) for name, spec in specs.items()}

    services = Stack(
        log_dir,
        {
            "HIBIKI_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "HIBIKI_KAFKA_TOPIC_PARTITIONS": str(args.partitions),
            "HIBIKI_DATA_DIR": str(data_dir),
            "HIBIKI_AUTH_TOKENS_FILE": str(data_dir / "dev-tokens.json"),
            "HIBIKI_LOG_JSON": "true",
            # A local system answers locally only.
            "HIBIKI_GRPC_HOST": "127.0.0.1",
            "HIBIKI_HTTP_HOST": "127.0.0.1",
        },
        _say,
    )
    resources.callback(services.stop)
    _start_smsc_simulator(services, smpp_port, args.smsc_scenario)
    services.wait_healthy([services.start(spec) for spec in specs.values()], timeout=args.timeout)

    _say(f"  … demo tenant '{DEV_TENANT}' through the gRPC APIs")
    routing_port, sms_port = (specs[name].grpc_port or 0 for name in ("routing", "sms-gateway"))
    asyncio.run(provision_demo_tenant(guidance_port, routing_port, sms_port, tokens["operator"], _say))

    if args.no_traffic:
        traffic = "no simulated traffic (--no-traffic)"
    else:
        traffic = f"simulated callers: {args.traffic_rate:g} calls/s"
        _start_traffic(services, resources, args, data_dir, broker.bootstrap_servers, guidance_port, tokens)
        _say(f"  ✓ telephony-sim {traffic} (ground truth in {data_dir / 'ground-truth.jsonl'})")

    today = datetime.now(ZoneInfo("Asia/Tokyo")).date().isoformat()
    _say(f"{UP_LINE} in {time.monotonic() - started:.1f}s. Ctrl-C stops everything.")
    for line in what_to_look_at(specs, tokens, data_dir, today, traffic, sip_port):
        _say(line)
    while True:
        time.sleep(0.5)
        services.check_alive()


def _refuse_busy_ports(ports: list[int], udp: list[int] | None = None) -> None:
    busy = busy_ports(ports, udp)
    if busy:
        raise StartupFailed(
            f"ports already in use on 127.0.0.1: {', '.join(map(str, busy))} — another `make run`? "
            "Stop it, or choose other ports with --port-offset N / --broker-port P"
        )


def _start_broker(args: argparse.Namespace, log_dir: Path, resources: contextlib.ExitStack) -> Broker:
    _say(f"  … broker on 127.0.0.1:{args.broker_port}")
    try:
        broker = resources.enter_context(kafka_broker(args.broker_port, log_dir / "broker.log"))
    except (RuntimeError, TimeoutError) as error:
        raise StartupFailed(f"the broker did not start ({error}); see {log_dir / 'broker.log'}") from error
    created = asyncio.run(ensure_topics(broker.bootstrap_servers, ALL_TOPICS, args.partitions))
    _say(f"  ✓ broker        {broker.kind} at {broker.bootstrap_servers}; {len(created)} topics created")
    return broker


def _start_smsc_simulator(services: Stack, port: int, scenario: Path) -> None:
    """Started, and listening, before sms-gateway binds to it."""
    smsc = services.start(smsc_simulator(port, scenario))
    try:
        wait_for_port(port, 30, smsc.process)
    except (RuntimeError, TimeoutError) as error:
        raise StartupFailed(f"the SMSC simulator did not start ({error}):\n{smsc.log_tail()}") from error
    _say(f"  ✓ smsc-sim      SMPP :{port}  (scenario {scenario.name})")


def _start_traffic(
    services: Stack,
    resources: contextlib.ExitStack,
    args: argparse.Namespace,
    data_dir: Path,
    bootstrap_servers: str,
    guidance_port: int,
    tokens: dict[str, str],
) -> None:
    if not telephony_simulator_script().exists():
        raise StartupFailed(f"{telephony_simulator_script()} is missing: run `make install`")
    spec = telephony_traffic(
        data_dir, bootstrap_servers, DEV_TENANT, args.traffic_rate, guidance_port, tokens["platform"]
    )
    services.start(spec)
    # Stopped first, while routing and reporting still run, so that the calls in progress end in the report.
    resources.callback(services.stop_module, spec.module, 15.0)


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, str(default)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="hibiki-dev", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="start broker, services and simulators; Ctrl-C stops all")
    add = run_parser.add_argument
    add("--data-dir", default=os.environ.get("HIBIKI_DEV_DATA_DIR", "var"),
        help="databases, dev tokens, logs and the callers' ground truth (default var/)")  # fmt: skip
    add("--broker-port", type=int, default=_env_int("HIBIKI_DEV_BROKER_PORT", 9092),
        help="Kafka-protocol port of the local broker (default 9092)")  # fmt: skip
    add("--port-offset", type=int, default=_env_int("HIBIKI_DEV_PORT_OFFSET", 0),
        help="added to every service port (gRPC 50051-50054, HTTP 9101-9104, SMPP 2775)")  # fmt: skip
    add("--partitions", type=int, default=3, help="partitions of each topic")
    add("--postgres", action="store_true", help="use embedded PostgreSQL instead of SQLite")
    add("--timeout", type=float, default=60.0, help="seconds to wait for the services")
    add("--no-traffic", action="store_true", help="do not start simulated callers")
    add("--traffic-rate", type=float, default=float(os.environ.get("HIBIKI_DEV_TRAFFIC_RATE", "0.5")),
        help="simulated calls started per second (default 0.5)")  # fmt: skip
    add("--smsc-scenario", type=Path, default=None,
        help="SMSC simulator scenario: carriers and behaviours by number (default: the dev one)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.traffic_rate <= 0:
        parser.error("--traffic-rate must be positive (use --no-traffic for none)")
    args.smsc_scenario = (args.smsc_scenario or dev_smsc_scenario()).resolve()
    sys.exit(run(args))
