"""Typed service settings read from HIBIKI_* environment variables (12-factor)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Settings every service has; a service subclasses it and overrides the defaults it owns."""

    model_config = SettingsConfigDict(env_prefix="HIBIKI_", env_file=None, extra="ignore")

    service_name: str = "hibiki"
    log_level: str = "INFO"
    log_json: bool = True

    grpc_host: str = "0.0.0.0"
    grpc_port: int = 50050
    grpc_shutdown_grace_seconds: float = 5.0
    http_host: str = "0.0.0.0"
    # HTTP port of /metrics, /healthz and any HTTP routes of the service.
    http_port: int = 9100

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_create_topics: bool = True
    kafka_topic_partitions: int = Field(default=3, ge=1)
    kafka_max_batch: int = Field(default=500, ge=1)
    kafka_fetch_max_wait_ms: int = Field(default=25, ge=0, le=500)
    kafka_consumer_group: str = ""
    consumer_lag_interval_seconds: float = Field(default=10.0, gt=0)
    # A partition whose records wait this long without a commit turns the service NOT_SERVING (liveness).
    consumer_stall_seconds: float = Field(default=60.0, gt=0)
    # Largest dead-letter record the broker takes (Kafka's message.max.bytes); longer copies are truncated.
    kafka_dlq_max_bytes: int = Field(default=1_000_000, ge=16_384)

    database_url: str = ""
    data_dir: Path = Path("var")
    run_migrations: bool = True

    # JSON object {token: {"tenant_id": ..., "role": ...}}; empty refuses every authenticated call.
    auth_tokens: dict[str, dict[str, str]] = Field(default_factory=dict)
    auth_tokens_file: Path | None = None
    # Signed JWT bearer tokens (see README "Security"); any key configured turns JWT authentication on.
    auth_jwt_issuer: str = ""
    auth_jwt_audience: str = ""
    auth_jwt_leeway_seconds: float = Field(default=30.0, ge=0)
    # {kid: secret} of HS256 keys (each at least 32 bytes).
    auth_jwt_hs256_secrets: dict[str, SecretStr] = Field(default_factory=dict)
    # A JSON Web Key Set ({"keys": [...]}, every key with a kid), inline or as a file.
    auth_jwt_jwks: str = ""
    auth_jwt_jwks_file: Path | None = None
    # A directory of <kid>.pem public keys (RSA ≥ 2048 bits → RS256, EC P-256 → ES256), e.g. a mounted Secret.
    auth_jwt_public_keys_dir: Path | None = None

    # gRPC over TLS when a certificate and key are set; with a client CA, clients must present a certificate
    # it signed (mutual TLS). Bearer tokens are still required on top.
    grpc_tls_cert_file: Path | None = None
    grpc_tls_key_file: Path | None = None
    grpc_tls_client_ca_file: Path | None = None

    outbox_batch: int = Field(default=500, ge=1)
    outbox_idle_seconds: float = Field(default=0.5, gt=0)

    @property
    def consumer_group(self) -> str:
        """Kafka consumer group of this service (one per service, shared by its replicas)."""
        return self.kafka_consumer_group or f"hibiki-{self.service_name}"

    @property
    def resolved_database_url(self) -> str:
        """The configured database URL, or an SQLite file under data_dir for local runs."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / (self.service_name + '.db')}"
