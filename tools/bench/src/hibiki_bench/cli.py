"""hibiki-bench: measures each pipeline against the raw broker limit taken in the same run (`make bench`)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from pathlib import Path

from hibiki_devstack.infra import free_port
from hibiki_devstack.stack import ServiceSpec
from hibiki_runtime.events import ALL_TOPICS
from hibiki_runtime.kafka import ensure_topics

from hibiki_bench.environment import PLATFORM_TOKEN, TENANT, Environment, environment
from hibiki_bench.latency import LatencyProfile
from hibiki_bench.plan import FULL, QUICK, Plan
from hibiki_bench.plot import Series, save_latency_plot
from hibiki_bench.profiling import summarise
from hibiki_bench.results import Result, format_table, measured, write_json
from hibiki_bench.scenarios import baseline, media, reporting, routing, sms, tts
from hibiki_bench.sip.endpoint import MAX_CALLS
from hibiki_bench.stats import percentile

MB = 1024 * 1024
# A decision-latency probe above this rate would only measure the load generator on 2 cores.
LATENCY_RATE_CAP = 2_000.0
PHASES = ("routing", "sms-gateway", "guidance-tts", "media-gateway", "reporting")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="hibiki-bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller loads: finishes in under 2 minutes")
    parser.add_argument("--out", type=Path, default=Path("bench"), help="where results.json and the plot go")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run the services under cProfile and write <out>/profiles/<service>.prof and .txt "
        "(slows them down: absolute numbers of such a run are not comparable)",
    )
    parser.add_argument(
        "--only",
        choices=PHASES,
        action="append",
        help="measure only these pipelines (repeatable); the raw baseline always runs",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Entry point of `hibiki-bench`."""
    args = parse_args(argv)
    plan = QUICK if args.quick else FULL
    profile_dir = args.out / "profiles" if args.profile else None
    if profile_dir is not None:
        profile_dir.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    results = asyncio.run(_run(plan, args.out, profile_dir, frozenset(args.only or PHASES)))
    write_json(results, args.out / "results.json")
    print()
    print(format_table(results))
    elapsed = time.monotonic() - began
    print(f"\nwrote {args.out / 'results.json'} and {args.out / 'latency.png'} in {elapsed:.0f}s")
    if profile_dir is not None:
        for profile in sorted(profile_dir.glob("*.prof")):
            profile.with_suffix(".txt").write_text(summarise(profile))
        print(f"profiles in {profile_dir} (*.prof for pstats/snakeviz, *.txt summaries)")


def _say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


async def _run(plan: Plan, out: Path, profile_dir: Path | None, phases: frozenset[str]) -> list[Result]:
    run_id = uuid.uuid4().hex[:6]
    with environment(profile_dir) as env:
        _say(f"broker: {env.broker.kind}; database: embedded PostgreSQL; logs: {env.work_dir}/logs")
        bootstrap = env.broker.bootstrap_servers
        await ensure_topics(bootstrap, ALL_TOPICS, partitions=3)
        await baseline.create_topics(bootstrap)
        return await _measure(env, plan, out, run_id, phases)


async def _measure(
    env: Environment, plan: Plan, out: Path, run_id: str, phases: frozenset[str]
) -> list[Result]:
    bootstrap = env.broker.bootstrap_servers
    _say(f"raw aiokafka pass-through of {plan.raw_messages:,} records")
    raw = await baseline.raw_pass_through_rate(bootstrap, plan.raw_messages)
    results = [measured("raw pass-through (baseline)", raw, "msg/s", raw)]

    specs: dict[str, ServiceSpec] = {}
    smsc_port = 0
    if "routing" in phases:
        specs["routing"] = env.service("routing", "hibiki_routing")
    if "sms-gateway" in phases:
        scenario = sms.write_scenario(env.work_dir / "smsc-scenario.json")
        smsc_port = env.start_smsc_simulator(scenario, record=env.work_dir / "smsc-received.jsonl")
        specs["sms-gateway"] = env.service(
            "sms-gateway",
            "hibiki_sms_gateway",
            HIBIKI_SMPP_PORT=str(smsc_port),
            HIBIKI_SMS_CARRIER_TABLE_FILE=str(scenario),
            # Unthrottled except the one carrier whose limiter is measured.
            HIBIKI_SMS_DEFAULT_RATE_PER_SECOND="1000000",
            HIBIKI_SMS_RATE_PER_SECOND=f'{{"{sms.THROTTLED_CARRIER}": {plan.throttle_per_second}}}',
        )
    if "guidance-tts" in phases:
        specs["guidance-tts"] = env.service("guidance-tts", "hibiki_guidance_tts")
    if specs:
        _say(f"starting {', '.join(specs)}")
        env.start(list(specs.values()))

    latencies: dict[str, Series] = {}
    lag: dict[str, Series] = {}
    if "routing" in specs:
        decision_results, latencies = await _routing_phase(env, specs["routing"], plan, raw, run_id)
        results += decision_results
    if "sms-gateway" in specs:
        results += await _sms_phase(env, specs["sms-gateway"], smsc_port, plan, run_id)
    if "guidance-tts" in specs:
        results += await _tts_phase(env, specs["guidance-tts"], plan, run_id)
    if "media-gateway" in phases:
        results += await _media_phase(env, plan)
    if "reporting" in phases:
        reporting_results, lag = await _reporting_phase(env, plan, raw, run_id, expect_backlog=bool(specs))
        results += reporting_results
    results += [measured(f"peak RSS {name}", peak / MB, "MB") for name, peak in env.memory.peaks().items()]
    title = "Hibiki: DigitsCollected produced → action consumed"
    save_latency_plot(latencies, lag, out / "latency.png", title)
    return results


async def _routing_phase(
    env: Environment, spec: ServiceSpec, plan: Plan, raw: float, run_id: str
) -> tuple[list[Result], dict[str, Series]]:
    assert spec.grpc_port
    bootstrap = env.broker.bootstrap_servers
    _say(
        f"routing: {plan.routing_calls:,} calls at once, then decision latency at half and at an eighth of "
        "the sustained rate"
    )
    await routing.publish_flow(spec.grpc_port)
    probes = 0

    async def floor(per_second: float, count: int) -> LatencyProfile:
        nonlocal probes
        probes += 1
        return await baseline.raw_latency(bootstrap, per_second, count, f"probe{probes}{run_id}-")

    decisions = await routing.measure(
        bootstrap, plan.routing_calls, plan.latency_seconds, LATENCY_RATE_CAP, f"rt{run_id}-", floor
    )
    env.stop("routing")
    results = [
        measured("routing decisions (state persisted)", decisions.decisions_per_second, "decisions/s", raw)
    ]
    series: dict[str, Series] = {}
    for probe in decisions.probes:
        rate = f"@{probe.offered_per_second:.0f}/s"
        results += [
            measured(f"routing decision latency {name} {rate}", value, "ms", base)
            for name, value, base in (
                ("p50", probe.latency.p50_ms, probe.floor.p50_ms),
                ("p95", probe.latency.p95_ms, probe.floor.p95_ms),
                ("p99", probe.latency.p99_ms, probe.floor.p99_ms),
            )
        ]
        series[f"routing decision {rate}"] = probe.latency.series
        series[f"raw pass-through {rate}"] = probe.floor.series
    return results, series


async def _sms_phase(
    env: Environment, spec: ServiceSpec, smsc_port: int, plan: Plan, run_id: str
) -> list[Result]:
    assert spec.grpc_port
    bootstrap = env.broker.bootstrap_servers
    _say(
        f"sms-gateway: {plan.sms_messages:,} requests, bare SMPP loop, throttle {plan.throttle_per_second}/s"
    )
    await sms.create_box(spec.grpc_port)
    bare = await sms.bare_smpp_rate(smsc_port, plan.sms_messages, window=10)
    gateway = await sms.gateway_rate(bootstrap, plan.sms_messages, f"sms{run_id}-")
    per_second, seconds = plan.throttle_per_second, plan.throttle_seconds
    throttled = await sms.throttled_rate(bootstrap, per_second, seconds, f"thr{run_id}-")
    _say(f"sms-gateway: {plan.sms_messages:,} requests with a receipt each")
    receipts = await sms.delivered_rate(bootstrap, plan.sms_messages, f"rcp{run_id}-")
    _say(f"sms-gateway: kill -9 during a burst of {plan.sms_crash_burst:,} requests")
    received = env.work_dir / "smsc-received.jsonl"

    async def restart() -> None:
        await asyncio.to_thread(env.start, [spec])

    crash = await sms.crash_burst(
        bootstrap,
        plan.sms_crash_burst,
        f"kill{run_id}-",
        kill=lambda: env.kill("sms-gateway"),
        restart=restart,
        received=lambda: [json.loads(line)["destination"] for line in received.read_text().splitlines()],
    )
    env.stop("sms-gateway")
    return [
        measured("sms-gateway requests to submit_sm", gateway, "sms/s", bare),
        measured("sms-gateway throttled carrier", throttled, "sms/s", per_second),
        measured("sms-gateway requests to accepted (receipt per message)", receipts.accepted, "sms/s", bare),
        measured(
            "sms-gateway requests to delivered (receipt per message)",
            receipts.delivered,
            "sms/s",
            receipts.accepted,
        ),
        measured("kill -9 in a burst: sent twice", crash.duplicates, "messages"),
        measured("kill -9 in a burst: uncertain (SMPP window 10)", crash.uncertain, "messages", 10),
        measured("kill -9 in a burst: without a result", crash.unfinished, "messages"),
        measured("kill -9 in a burst: converged after restart", crash.converged_seconds, "s", 60),
    ]


async def _tts_phase(env: Environment, spec: ServiceSpec, plan: Plan, run_id: str) -> list[Result]:
    assert spec.grpc_port and spec.http_port
    _say("guidance-tts: synthesis and cached audio fetches")
    speech = await tts.measure(
        spec.grpc_port, spec.http_port, plan.tts_texts, plan.audio_fetches, f"b{run_id}"
    )
    env.stop("guidance-tts")
    return [
        measured("guidance-tts synthesis real-time factor", speech.service_rtf, "s/s", speech.engine_rtf),
        measured("guidance-tts cached audio fetch p50", speech.fetch_p50_ms, "ms"),
        measured("guidance-tts cached audio fetch p99", speech.fetch_p99_ms, "ms", speech.healthz_p99_ms),
    ]


async def _reporting_phase(
    env: Environment, plan: Plan, raw: float, run_id: str, *, expect_backlog: bool
) -> tuple[list[Result], dict[str, Series]]:
    _say("reporting: catching up with the run so far, then a burst")
    spec = env.service("reporting", "hibiki_reporting")
    env.start([spec])
    assert spec.http_port
    await reporting.wait_until_idle(spec.http_port, expect_events=expect_backlog)
    _say(f"reporting: burst of {plan.reporting_burst:,} call events")
    burst = await reporting.burst(
        env.broker.bootstrap_servers, spec.http_port, plan.reporting_burst, f"rp{run_id}-",
        plan.reporting_budget_seconds,
    )  # fmt: skip
    env.stop("reporting")
    name = f"{plan.reporting_burst:,}-event burst"
    results = [
        measured("reporting events applied", burst.applied_per_second, "events/s", raw),
        measured(f"reporting lag at end of {name}", burst.lag_at_burst_end, "events"),
    ]
    if burst.catch_up_seconds is not None:
        results.append(measured(f"reporting catch-up after {name}", burst.catch_up_seconds, "s"))
    else:
        budget = f"{plan.reporting_budget_seconds:.0f}s"
        results.append(measured(f"reporting lag {budget} after {name}", burst.lag_at_budget_end, "events"))
    return results, {f"reporting, burst of {plan.reporting_burst:,}": burst.lag_series}


async def _media_phase(env: Environment, plan: Plan) -> list[Result]:
    _say("media-gateway: starting guidance-tts, routing and media-gateway (own databases)")
    tts_spec = env.service("guidance-tts", "hibiki_guidance_tts", HIBIKI_SYNTHESIS_WORKERS="1")
    assert tts_spec.grpc_port and tts_spec.http_port
    routing_spec = env.service(
        "routing",
        "hibiki_routing",
        HIBIKI_GUIDANCE_ADDRESS=f"127.0.0.1:{tts_spec.grpc_port}",
        HIBIKI_GUIDANCE_TOKENS=json.dumps({TENANT: PLATFORM_TOKEN}),
    )
    assert routing_spec.grpc_port
    ports = media.PortPlan()
    far = media.Far(free_port(), ports.rtp_block())
    gateway_spec = env.service(
        "media-gateway", "hibiki_media_gateway", **media.gateway_env(far, tts_spec.http_port)
    )
    assert gateway_spec.http_port
    work_dir = env.work_dir / "media"
    work_dir.mkdir(exist_ok=True)
    try:
        (gateway, *_) = env.start([gateway_spec, routing_spec, tts_spec])
        prompts = await media.provision(
            tts_spec.grpc_port, tts_spec.http_port, routing_spec.grpc_port, work_dir
        )
        media_plan = media.MediaPlan(
            plan.media_burst_calls,
            plan.media_burst_per_second,
            plan.media_hold_steps,
            plan.media_listen_seconds,
            plan.media_dtmf_presses,
        )
        found = await media.measure(
            far, gateway.process.pid, gateway_spec.http_port, env.broker.bootstrap_servers, prompts, work_dir,
            media_plan, _say,
        )  # fmt: skip
    finally:
        for name in ("media-gateway", "routing", "guidance-tts"):
            env.stop(name)
    return _media_results(found, plan.media_burst_per_second)


def _media_results(found: media.MediaMeasurements, offered: float) -> list[Result]:
    gateway, bare = found.burst, found.bare_burst
    offer = f"offered {offered:.0f}/s, ≤{MAX_CALLS} at once"
    results = [
        measured(
            f"media-gateway calls answered ({offer})",
            gateway.answered_per_second,
            "calls/s",
            bare.answered_per_second,
        ),
        measured("media-gateway INVITE → 200 OK p50", gateway.answer_p50_ms, "ms", bare.answer_p50_ms),
        measured("media-gateway INVITE → 200 OK p99", gateway.answer_p99_ms, "ms", bare.answer_p99_ms),
        measured(
            "media-gateway burst calls not answered",
            sum(gateway.not_answered.values()),
            "calls",
            sum(bare.not_answered.values()),
        ),
    ]
    for calls, held in found.holds.items():
        base = found.bare_holds.get(calls)
        if held.answered < calls:
            name = f"media-gateway calls answered of {calls} at once"
            results.append(measured(name, held.answered, "calls", base.answered if base else None))
        if held.check is not None:
            base_p99 = base.check.p99_ms if base and base.check else None
            results.append(
                measured(f"media-gateway RTP spacing p99 @{calls} calls", held.check.p99_ms, "ms", base_p99)
            )
        cores = found.gateway_cores.get(calls)
        if cores is not None:
            results.append(measured(f"media-gateway CPU @{calls} calls", cores, "cores"))
    largest = media.intact(found.holds)
    results.append(
        measured(
            "media-gateway concurrent calls with audio intact",
            largest,
            "calls",
            media.intact(found.bare_holds),
        )
    )
    shown = largest or min(found.holds)
    held = found.holds[shown]
    if held.check is not None:
        results.append(
            measured(
                f"media-gateway RTP spacing max @{shown} calls",
                held.check.max_ms,
                "ms",
                _bare_max(found.bare_holds.get(shown)),
            )
        )
    results.append(
        measured(f"caller media clock spacing p99 @{shown} calls (control)", held.caller_clock_p99_ms, "ms")
    )
    pairs = found.keys.pairs
    if pairs:
        for name, values in (
            ("media-gateway key → next prompt's first packet", [p.total_ms for p in pairs]),
            ("  of it routing: DigitsCollected → next action produced", [p.routing_ms for p in pairs]),
            ("  of it media-gateway: key → DigitsCollected produced", [p.gateway_in_ms for p in pairs]),
            (
                "  of it media-gateway: action produced → prompt's first packet",
                [p.gateway_out_ms for p in pairs],
            ),
        ):
            results += [
                measured(f"{name} p50", percentile(values, 0.5), "ms"),
                measured(f"{name} p99", percentile(values, 0.99), "ms"),
            ]
    results.append(
        measured(
            "media-gateway keys without a measured next prompt",
            found.keys.unpaired,
            "keys",
            found.keys.presses,
        )
    )
    return results


def _bare_max(held: media.Hold | None) -> float | None:
    return held.check.max_ms if held is not None and held.check is not None else None
