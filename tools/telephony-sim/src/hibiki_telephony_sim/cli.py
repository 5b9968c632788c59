"""`hibiki-telephony-sim`: simulated callers against the real call.events / call.actions protocol.

Every flag has an environment equivalent (HIBIKI_SIM_<FLAG>, e.g. HIBIKI_SIM_RATE=2). The run stops by
itself after --calls calls or --duration seconds and prints calls by outcome.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from hibiki_runtime.events import CALL_ACTIONS, CALL_EVENTS
from hibiki_runtime.logging import configure_logging

from hibiki_telephony_sim.audio import AudioSource, GuidanceAudioSource
from hibiki_telephony_sim.behaviour import Timing
from hibiki_telephony_sim.ground_truth import GroundTruthWriter
from hibiki_telephony_sim.kafka_transport import KafkaTransport
from hibiki_telephony_sim.scenario import Scenario, ScenarioError, load_scenario, parse_mix, validate
from hibiki_telephony_sim.simulator import SimConfig, Simulator, Summary


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"HIBIKI_SIM_{name}", default)


def _env_flag(name: str) -> bool:
    return (_env(name) or "").lower() in {"1", "true", "yes", "on"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hibiki-telephony-sim", description=__doc__)
    add = parser.add_argument
    bootstrap = os.environ.get("HIBIKI_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    add("--bootstrap", default=_env("BOOTSTRAP", bootstrap), help="Kafka bootstrap servers")
    add("--tenant", default=_env("TENANT", "demo"), help="tenant id put in every envelope")
    add("--scenario", default=_env("SCENARIO"), help="scenario JSON: dialed numbers and their digits, mix")
    add("--calls", type=int, default=_int_env("CALLS"), help="number of calls, then stop")
    add(
        "--duration", type=float, default=_float_env("DURATION"), help="seconds to start calls for, then stop"
    )
    add("--rate", type=float, default=_float_env("RATE", 1.0), help="calls started per second")
    add("--concurrency", type=int, default=_int_env("CONCURRENCY", 10), help="calls in progress at most")
    add("--speed", type=float, default=_float_env("SPEED", 1.0),
        help="time compression: prompts and timers run this many times faster")  # fmt: skip
    add("--mix", default=_env("MIX"), help="behaviour weights, e.g. right=6,wrong_then_right=2,hangup=1")
    add(
        "--schedule",
        default=_env("SCHEDULE"),
        help="behaviours in turn instead of a random draw, e.g. right,hangup",
    )
    add("--seed", type=int, default=_int_env("SEED", 0))
    add("--run-id", default=_env("RUN_ID"), help="prefix of call ids (default: sim-<UTC time>-<random>)")
    add("--ground-truth", default=_env("GROUND_TRUTH", "var/ground-truth.jsonl"), help="JSON-lines output")
    add("--append", action="store_true", default=_env_flag("APPEND"), help="append to the ground-truth file")
    add(
        "--guidance-endpoint",
        default=_env("GUIDANCE_ENDPOINT"),
        help="GuidanceService host:port to fetch prompt audio from (default: no fetch, nominal durations)",
    )
    add("--token", default=_env("TOKEN", ""), help="bearer token for GuidanceService")
    add("--no-audio-cache", action="store_true", default=_env_flag("NO_AUDIO_CACHE"),
        help="fetch the audio again for every prompt played")  # fmt: skip
    add("--prompt-seconds", type=float, default=_float_env("PROMPT_SECONDS", 2.0),
        help="nominal duration of a prompt whose audio is not fetched")  # fmt: skip
    add("--answer-timeout", type=float, default=_float_env("ANSWER_TIMEOUT", 15.0),
        help="real seconds a caller waits for the system before hanging up")  # fmt: skip
    add("--from-beginning", action="store_true", default=_env_flag("FROM_BEGINNING"),
        help="read call.actions from the beginning instead of the end")  # fmt: skip
    add("--events-topic", default=_env("EVENTS_TOPIC", CALL_EVENTS), help="topic to produce CallEvents to")
    add("--actions-topic", default=_env("ACTIONS_TOPIC", CALL_ACTIONS), help="topic to read CallActions from")
    add("--summary-json", default=_env("SUMMARY_JSON"), help="also write the summary as JSON here")
    add("--log-level", default=_env("LOG_LEVEL", "WARNING"))
    return parser


def _int_env(name: str, default: int | None = None) -> int | None:
    value = _env(name)
    return int(value) if value else default


def _float_env(name: str, default: float | None = None) -> float | None:
    value = _env(name)
    return float(value) if value else default


def config_from_args(args: argparse.Namespace) -> tuple[SimConfig, Scenario]:
    """Config and scenario from parsed flags; raises ScenarioError/ValueError on bad input."""
    if not args.scenario:
        raise ScenarioError("--scenario is required")
    if args.calls is None and args.duration is None:
        raise ValueError("give --calls or --duration")
    scenario = load_scenario(Path(args.scenario))
    if args.mix:
        scenario = replace(scenario, mix=parse_mix(args.mix))
    schedule = tuple(s.strip() for s in (args.schedule or "").split(",") if s.strip())
    validate(scenario, schedule)
    config = SimConfig(
        tenant_id=args.tenant,
        run_id=args.run_id or datetime.now(UTC).strftime("sim-%Y%m%dT%H%M%S-") + secrets.token_hex(2),
        calls=args.calls,
        duration=args.duration,
        rate=args.rate,
        concurrency=args.concurrency,
        speed=args.speed,
        seed=args.seed,
        schedule=schedule,
        answer_timeout=args.answer_timeout,
        timing=Timing(),
    )
    return config, scenario


async def run(args: argparse.Namespace) -> Summary:
    config, scenario = config_from_args(args)
    audio: AudioSource = (
        GuidanceAudioSource(
            args.guidance_endpoint, args.token, args.prompt_seconds, cache=not args.no_audio_cache
        )
        if args.guidance_endpoint
        else AudioSource(args.prompt_seconds)
    )
    writer = GroundTruthWriter(Path(args.ground_truth), append=args.append)
    transport = KafkaTransport(
        args.bootstrap,
        from_beginning=args.from_beginning,
        events_topic=args.events_topic,
        actions_topic=args.actions_topic,
    )
    simulator = Simulator(config, scenario, transport, audio, writer)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, simulator.stop)
    try:
        await transport.start(simulator.wants, simulator.on_action)
        return await simulator.run()
    finally:
        await transport.stop()
        await audio.close()
        writer.close()


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    configure_logging("telephony-sim", args.log_level, json=False)
    try:
        summary = asyncio.run(run(args))
    except (ScenarioError, ValueError) as error:
        print(f"hibiki-telephony-sim: {error}", file=sys.stderr)
        sys.exit(2)
    for line in summary.lines():
        print(line)
    print(f"  ground truth: {args.ground_truth}")
    if args.summary_json:
        Path(args.summary_json).write_text(json.dumps(summary.as_dict(), indent=2) + "\n", encoding="utf-8")
    sys.exit(1 if summary.errors else 0)
