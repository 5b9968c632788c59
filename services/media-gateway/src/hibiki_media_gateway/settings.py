"""Settings of media-gateway (HIBIKI_* environment variables)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from hibiki_runtime.settings import ServiceSettings
from pydantic import BaseModel, Field, SecretStr, model_validator

from hibiki_media_gateway.adapters.sip_engine import PJSUA_MAX_CALLS
from hibiki_media_gateway.domain.numbers import e164


class MediaTenant(BaseModel):
    """A tenant this gateway answers for: its dialed numbers and its guidance-tts token (role platform)."""

    numbers: list[str]
    guidance_token: SecretStr


class MediaGatewaySettings(ServiceSettings):
    service_name: str = "media-gateway"
    grpc_port: int = 50055
    http_port: int = 9105

    # SIP: address and port (UDP and/or TCP); behind NAT or a load balancer, the address callers reach.
    sip_host: str = "127.0.0.1"
    sip_port: int = Field(default=5060, ge=1, le=65535)
    sip_udp: bool = True
    sip_tcp: bool = True
    sip_public_address: str = ""
    # RTP: each call takes two ports (RTP, RTCP) from [rtp_port, rtp_port + rtp_port_range).
    rtp_port: int = Field(default=40000, ge=1024, le=65000)
    rtp_port_range: int = Field(default=2000, ge=4)
    # Calls at once per process. The pjsua2-python wheel is built with PJSIP's default PJSUA_MAX_CALLS (4):
    # PJSIP would refuse a fifth call itself, unseen and uncounted, so the service refuses it first (486).
    media_max_calls: int = Field(default=PJSUA_MAX_CALLS, ge=1, le=PJSUA_MAX_CALLS)
    pjsip_log_level: int = Field(default=1, ge=0, le=6)

    # {"<tenant>": {"numbers": ["+81312345678", ...], "guidance_token": "..."}}, or the same in a file.
    media_tenants: dict[str, MediaTenant] = Field(default_factory=dict)
    media_tenants_file: Path | None = None
    guidance_url: str = "http://127.0.0.1:9101"  # guidance-tts HTTP: /audio/{id}.wav
    media_audio_format: str = Field(default="mulaw", pattern="^(mulaw|pcm16)$")
    media_audio_cache_mb: int = Field(default=256, ge=1)
    media_audio_fresh_seconds: float = Field(default=300.0, ge=0)

    # Seconds a call waits for routing's next action before it is hung up (network_error).
    media_idle_timeout_seconds: float = Field(default=15.0, gt=0)
    # At shutdown calls may finish this long; the rest end with platform_failure.
    media_drain_seconds: float = Field(default=20.0, ge=0)
    # Where a transfer to a number goes (sip:<number>@<domain>); empty: back to the trunk that called.
    media_transfer_domain: str = ""
    # "refer": blind transfer by REFER; "bridge": the gateway calls the destination and bridges the calls.
    media_transfer_mode: str = Field(default="refer", pattern="^(refer|bridge)$")

    # This process among the replicas: names its call.actions consumer group (each replica reads every
    # action: a call lives in the replica that answered it). A StatefulSet's pod name keeps it stable.
    media_instance_name: str = Field(default_factory=socket.gethostname)
    media_heartbeat_seconds: float = Field(default=3.0, gt=0)
    media_instance_timeout_seconds: float = Field(default=15.0, gt=0)

    @model_validator(mode="after")
    def _tenants_from_file(self) -> MediaGatewaySettings:
        if self.media_tenants_file is not None:
            loaded = json.loads(self.media_tenants_file.read_text(encoding="utf-8"))
            self.media_tenants = {name: MediaTenant.model_validate(t) for name, t in loaded.items()}
        for name, tenant in self.media_tenants.items():
            for number in tenant.numbers:
                if e164(number) != number:
                    raise ValueError(f"media tenant {name!r}: {number!r} is not an E.164 number")
        return self

    @property
    def consumer_group(self) -> str:
        return self.kafka_consumer_group or f"hibiki-{self.service_name}-{self.media_instance_name}"

    @property
    def tenants_by_number(self) -> dict[str, str]:
        return {number: name for name, tenant in self.media_tenants.items() for number in tenant.numbers}

    @property
    def guidance_tokens(self) -> dict[str, str]:
        return {name: tenant.guidance_token.get_secret_value() for name, tenant in self.media_tenants.items()}
