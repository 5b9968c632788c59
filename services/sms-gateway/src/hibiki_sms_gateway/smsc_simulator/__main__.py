"""Run the SMSC simulator on its own until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path

from hibiki_sms_gateway.smsc_simulator.scenario import DEV_SCENARIO, Scenario
from hibiki_sms_gateway.smsc_simulator.simulator import SmscSimulator


async def _run(host: str, port: int, scenario: Scenario, record: Path | None) -> None:
    simulator = SmscSimulator(scenario, host, port, record)
    await simulator.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"SMSC simulator listening on {host}:{port}", flush=True)
    await stop.wait()
    await simulator.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="SMPP 3.4 SMSC simulator with scripted carrier behaviour")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2775)
    parser.add_argument(
        "--scenario",
        type=Path,
        default=DEV_SCENARIO,
        help="JSON {rules: [{prefix, carrier, behaviour, delay, ...}]}; default: the development scenario",
    )
    parser.add_argument("--record", type=Path, help="append each reassembled message to this JSON-lines file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s smsc-simulator %(levelname)s %(message)s")
    scenario = Scenario.load(args.scenario)
    asyncio.run(_run(args.host, args.port, scenario, args.record))


main()
