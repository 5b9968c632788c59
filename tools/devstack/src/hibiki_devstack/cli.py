"""`hibiki-dev run`: the whole system on one machine with embedded defaults (what `make run` starts)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path

from hibiki_runtime.events import ALL_TOPICS
from hibiki_runtime.kafka import ensure_topics

from hibiki_devstack.infra import kafka_broker, postgres_server
from hibiki_devstack.stack import ServiceFailed, Stack, default_services

DEV_TENANT = "demo"


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


def run(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir).resolve()
    log_dir = data_dir / "log"
    started = time.monotonic()
    _say(f"Hibiki: starting the local system (data in {data_dir}, logs in {log_dir})")
    with contextlib.ExitStack() as stack:
        _say(f"  … broker on 127.0.0.1:{args.broker_port}")
        log_dir.mkdir(parents=True, exist_ok=True)
        broker = stack.enter_context(kafka_broker(args.broker_port, log_dir / "broker.log"))
        created = asyncio.run(ensure_topics(broker.bootstrap_servers, ALL_TOPICS, args.partitions))
        _say(
            f"  ✓ broker        {broker.kind} at {broker.bootstrap_servers}; "
            f"topics ready ({len(created)} created)"
        )
        env = {
            "HIBIKI_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "HIBIKI_KAFKA_TOPIC_PARTITIONS": str(args.partitions),
            "HIBIKI_DATA_DIR": str(data_dir),
            "HIBIKI_AUTH_TOKENS_FILE": str(data_dir / "dev-tokens.json"),
            "HIBIKI_LOG_JSON": "true",
        }
        tokens = write_dev_tokens(data_dir / "dev-tokens.json")
        specs = default_services(args.port_offset)
        if args.postgres:
            postgres = stack.enter_context(postgres_server(data_dir / "postgres"))
            for spec in specs:
                postgres.create_database(spec.name.replace("-", "_"))
            specs = [
                replace(spec, env={"HIBIKI_DATABASE_URL": postgres.url(spec.name.replace("-", "_"))})
                for spec in specs
            ]
            _say("  ✓ postgres      embedded PostgreSQL, one database per service")
        services = Stack(log_dir, env, _say)
        stack.callback(services.stop)
        try:
            running = [services.start(spec) for spec in specs]
            services.wait_healthy(running, timeout=args.timeout)
        except ServiceFailed as failure:
            _say(f"✗ {failure}")
            return 1
        _say(f"Hibiki is up in {time.monotonic() - started:.1f}s. Ctrl-C stops everything.")
        _say(f"  operator token: {tokens['operator']}   (all tokens: {data_dir / 'dev-tokens.json'})")
        _say("  metrics: " + "  ".join(f"http://127.0.0.1:{s.http_port}/metrics" for s in specs))
        try:
            while True:
                time.sleep(0.5)
                services.check_alive()
        except KeyboardInterrupt:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not abandon the children
            _say("\nstopping…")
        except ServiceFailed as failure:
            _say(f"✗ {failure}")
            return 1
        finally:
            services.stop()
    _say("stopped.")
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="hibiki-dev", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="start broker, services and simulators; Ctrl-C stops all")
    run_parser.add_argument("--data-dir", default=os.environ.get("HIBIKI_DEV_DATA_DIR", "var"))
    run_parser.add_argument(
        "--broker-port", type=int, default=int(os.environ.get("HIBIKI_DEV_BROKER_PORT", "9092"))
    )
    run_parser.add_argument(
        "--port-offset", type=int, default=int(os.environ.get("HIBIKI_DEV_PORT_OFFSET", "0")),
        help="added to every service port (gRPC 50051-50054, HTTP 9101-9104)",
    )  # fmt: skip
    run_parser.add_argument("--partitions", type=int, default=3)
    run_parser.add_argument(
        "--postgres", action="store_true", help="use embedded PostgreSQL instead of SQLite"
    )
    run_parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the services")
    args = parser.parse_args(argv)
    sys.exit(run(args))
