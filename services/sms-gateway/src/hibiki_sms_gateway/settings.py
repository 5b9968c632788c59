"""Settings of the sms-gateway service (HIBIKI_* environment variables)."""

from __future__ import annotations

from pathlib import Path

from hibiki_runtime.settings import ServiceSettings
from pydantic import Field, SecretStr

from hibiki_sms_gateway.domain.message_text import DEFAULT_MAX_CHARACTERS

# Development default only: the prefix does not identify the carrier in Japan (number portability; all
# four networks hold 070/080/090 numbers). Longest prefix wins; the SMSC simulator's dev_scenario.json has
# the same ranges (tested).
_DEV_CARRIER_TABLE = {
    "+8170": "rakuten",
    "+81708": "kddi",
    "+8180": "softbank",
    "+81808": "kddi",
    "+8190": "docomo",
    "+81908": "kddi",
}


class SmsGatewaySettings(ServiceSettings):
    service_name: str = "sms-gateway"
    grpc_port: int = 50053
    http_port: int = 9103

    sms_max_characters: int = Field(default=DEFAULT_MAX_CHARACTERS, ge=70, le=670)
    sms_allow_m2m: bool = False  # accept 020 M2M numbers
    # Static carrier table: {E.164 prefix: carrier}; or a simulator scenario file whose rules name carriers.
    sms_carrier_table: dict[str, str] = Field(default_factory=lambda: dict(_DEV_CARRIER_TABLE))
    sms_carrier_table_file: Path | None = None
    # Number-portability lookup: URL with {e164} (URL-quoted), e.g. "https://mnp.example.jp/v1/carrier?number={e164}",
    # answering {"carrier": "docomo"|"au"|"softbank"|"rakuten"|other}; the static table answers when it fails.
    # Empty: the static table alone (development only; a warning is logged at start).
    sms_mnp_url: str = ""
    sms_mnp_token: SecretStr = SecretStr("")  # sent as Authorization: Bearer
    sms_mnp_timeout_seconds: float = Field(default=1.0, gt=0)
    sms_mnp_cache_ttl_seconds: float = Field(default=86400.0, gt=0)
    sms_mnp_cache_size: int = Field(default=100_000, ge=1)
    # Per-carrier token bucket (parts per second); carriers not named use the default.
    sms_rate_per_second: dict[str, float] = Field(default_factory=dict)
    sms_default_rate_per_second: float = Field(default=50.0, gt=0)
    sms_submit_attempts: int = Field(default=8, ge=1)
    sms_backoff_initial_seconds: float = Field(default=0.2, gt=0)
    sms_backoff_max_seconds: float = Field(default=5.0, gt=0)
    sms_breaker_threshold: int = Field(default=5, ge=1)
    sms_breaker_ttl_seconds: float = Field(default=30.0, gt=0)
    sms_cooldown_seconds: float = Field(default=60.0, ge=0)
    sms_cooldown_max_sends: int = Field(default=5, ge=1)
    sms_cooldown_window_hours: float = Field(default=24.0, gt=0)
    # Whole-message budget for submitting every part; past it the outcome is uncertain and not retried.
    sms_send_budget_seconds: float = Field(default=120.0, gt=0)
    # SUBMITTING for longer than this is settled as uncertain whoever owns it (a process that hangs); must
    # exceed the send budget.
    sms_uncertain_after_seconds: float = Field(default=180.0, gt=0)
    sms_sweep_interval_seconds: float = Field(default=2.0, gt=0)
    # Every process heartbeats; one silent for sms_instance_timeout_seconds is taken for stopped: its
    # queued messages are sent by another, its submitting ones wait sms_reconcile_seconds for their
    # receipts (matched by recipient and time) before they are reported uncertain.
    sms_heartbeat_seconds: float = Field(default=3.0, gt=0)
    sms_instance_timeout_seconds: float = Field(default=15.0, gt=0)
    sms_reconcile_seconds: float = Field(default=20.0, gt=0)

    # Public base URL of this service's GET /s/{token} (e.g. "https://s.example.jp"); when set, every box URL
    # goes out as a per-message tracked short link, and message lengths are counted with it.
    sms_short_link_base_url: str = ""
    sms_short_link_lifetime_days: int = Field(default=90, ge=1)

    # Days final messages (with their parts and short links) and receipts are kept, then hard-deleted.
    sms_retention_days: int = Field(default=90, ge=1)
    sms_retention_batch: int = Field(default=1000, ge=1)  # rows per delete transaction
    sms_retention_interval_seconds: float = Field(default=3600.0, gt=0)

    # Connector per carrier: "smpp" (default for every carrier) or "kannel" (HTTP aggregator).
    sms_carrier_connectors: dict[str, str] = Field(default_factory=dict)

    smpp_host: str = "127.0.0.1"
    smpp_port: int = 2775
    smpp_system_id: str = "hibiki"
    smpp_password: SecretStr = SecretStr("")
    smpp_source_addr: str = "HIBIKI"
    smpp_window: int = Field(default=10, ge=1)
    smpp_submit_timeout_seconds: float = Field(default=10.0, gt=0)

    # Kannel-style HTTP aggregator (only used when a carrier is routed to "kannel").
    kannel_sendsms_url: str = "http://127.0.0.1:13013/cgi-bin/sendsms"
    kannel_username: str = ""
    kannel_password: SecretStr = SecretStr("")
    # Where the aggregator reaches this service's receipt route; it appends id and type.
    kannel_receipt_url: str = "http://127.0.0.1:9103/sms/receipts/kannel"
    kannel_receipt_token: SecretStr = SecretStr("")
    kannel_timeout_seconds: float = Field(default=10.0, gt=0)
