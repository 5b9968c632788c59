"""The two simulators of a local run as supervised processes: the SMSC (SMPP server playing the carriers)
and the telephony platform (simulated callers of the demo tenant)."""

from __future__ import annotations

import json
import sys
from importlib import resources
from pathlib import Path

from hibiki_devstack.demo import traffic_scenario
from hibiki_devstack.stack import ServiceSpec

SMPP_PORT = 2775
# The simulators run until stopped; the telephony simulator wants a duration, so it gets a year.
_FOREVER_SECONDS = 365 * 24 * 3600


def dev_smsc_scenario() -> Path:
    """The SMSC simulator's development scenario, shipped with sms-gateway (carriers and behaviours)."""
    return Path(str(resources.files("hibiki_sms_gateway.smsc_simulator") / "dev_scenario.json"))


def smsc_simulator(port: int, scenario: Path) -> ServiceSpec:
    """The SMPP server sms-gateway binds to; its scenario decides carriers, receipts and refusals."""
    return ServiceSpec(
        "smsc-simulator",
        "hibiki_sms_gateway.smsc_simulator",
        args=["--host", "127.0.0.1", "--port", str(port), "--scenario", str(scenario)],
    )


def sms_gateway_env(smpp_port: int, scenario: Path) -> dict[str, str]:
    """sms-gateway settings that point it at the SMSC simulator and its carrier table."""
    return {"HIBIKI_SMPP_PORT": str(smpp_port), "HIBIKI_SMS_CARRIER_TABLE_FILE": str(scenario)}


SIP_PORT = 5060
RTP_PORT = 40000
RTP_PORTS = 200  # 100 calls


def media_gateway_env(
    sip_port: int, rtp_port: int, guidance_http_port: int, tenant: str, number: str, token: str
) -> dict[str, str]:
    """media-gateway settings: SIP and RTP on loopback, the demo tenant's number and guidance-tts token."""
    tenants = {tenant: {"numbers": [number], "guidance_token": token}}
    return {
        "HIBIKI_SIP_HOST": "127.0.0.1",
        "HIBIKI_SIP_PORT": str(sip_port),
        "HIBIKI_RTP_PORT": str(rtp_port),
        "HIBIKI_RTP_PORT_RANGE": str(RTP_PORTS),
        "HIBIKI_GUIDANCE_URL": f"http://127.0.0.1:{guidance_http_port}",
        "HIBIKI_MEDIA_TENANTS": json.dumps(tenants),
    }


def telephony_simulator_script() -> Path:
    """The `hibiki-telephony-sim` console script next to this interpreter."""
    return Path(sys.executable).with_name("hibiki-telephony-sim")


def telephony_traffic(
    data_dir: Path,
    bootstrap_servers: str,
    tenant: str,
    rate: float,
    guidance_port: int,
    platform_token: str,
) -> ServiceSpec:
    """Simulated callers of the demo number at `rate` calls per second, fetching the guidance audio they
    are told to play; the scenario is written to the data dir, the ground truth of the run next to it."""
    scenario = data_dir / "demo-traffic-scenario.json"
    scenario.write_text(json.dumps(traffic_scenario(), ensure_ascii=False, indent=1), encoding="utf-8")
    return ServiceSpec(
        "telephony-sim",
        "hibiki_telephony_sim",
        # The token goes in the environment, not on a command line other users can read.
        env={"HIBIKI_SIM_TOKEN": platform_token},
        command=[
            str(telephony_simulator_script()),
            "--bootstrap", bootstrap_servers,
            "--tenant", tenant,
            "--scenario", str(scenario),
            "--duration", str(_FOREVER_SECONDS),
            "--rate", str(rate),
            "--concurrency", "20",
            "--guidance-endpoint", f"127.0.0.1:{guidance_port}",
            "--ground-truth", str(data_dir / "ground-truth.jsonl"),
        ],
    )  # fmt: skip
