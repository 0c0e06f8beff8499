"""Configuration: the one place environment variables are read.

Every variable of the HTTP contract's configuration table is a field here; `Settings()` reads
them from the environment (and an optional `.env` file) once, at start-up, and the object is
passed explicitly to `create_app`. Nothing else in the code base reads `os.environ` for
configuration.
"""

from __future__ import annotations

import os
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_JWT_SECRET = "inkwell-development-secret-change-me"  # noqa: S105 - refused in production
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./var/inkwell.db"
# OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL values Inkwell can export with.
SUPPORTED_OTLP_PROTOCOLS = ("http/protobuf",)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    app_env: Literal["development", "test", "staging", "production"] = "development"
    service_name: str = Field(default="inkwell", validation_alias="OTEL_SERVICE_NAME")

    database_url: str = DEFAULT_DATABASE_URL
    read_database_url: str | None = None
    # A fixed pool by default: SQLAlchemy closes an overflow connection at check-in whenever
    # `db_pool_size` others are idle, so under steady load past the pool size connections are
    # opened and closed all the time (measured: a third of the profile read's server CPU, and
    # the pool-timeout 503s under 64 concurrent profile reads). Unset: see `pool_size`.
    db_pool_size: int | None = Field(default=None, ge=1)
    db_max_overflow: int = Field(default=0, ge=0)
    db_pool_timeout_seconds: float = Field(default=5.0, gt=0)
    db_connect_timeout_seconds: float = Field(default=3.0, gt=0)
    db_command_timeout_seconds: float | None = Field(default=30.0, gt=0)
    sqlite_busy_timeout_ms: int = Field(default=5000, ge=0)
    # The hot reads' statements on the event loop's own thread (src/core/db/inline_sqlite.py):
    # ~8 µs of blocking instead of ~180 µs of CPU for aiosqlite's thread hop.
    sqlite_inline_reads: bool = True

    redis_url: str | None = None
    redis_key_prefix: str = "inkwell:"
    redis_timeout_seconds: float = Field(default=0.5, gt=0)

    jwt_secret: str = DEFAULT_JWT_SECRET
    access_token_ttl_seconds: int = Field(default=1800, gt=0)
    refresh_token_ttl_seconds: int = Field(default=604800, gt=0)
    bcrypt_rounds: int = Field(default=12, ge=4, le=31)
    # What a new account may do: `creator` publishes, `viewer` only reads (admins are made
    # with `inkwell promote-admin`, never by signing up).
    signup_role: Literal["viewer", "creator"] = "creator"
    password_hash_concurrency: int | None = Field(default=None, ge=1)

    content_cache_ttl_seconds: int = Field(default=600, ge=1)
    content_cache_max_entries: int = Field(default=10_000, ge=1)
    # The in-process cache (embedded default, no REDIS_URL) is bounded by bytes too: keys,
    # values and a per-entry estimate. Redis is bounded by its own `maxmemory`.
    content_cache_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    # A search ranks only its newest this-many matches; older ones follow, newest first
    # (src/slices/content/relevance.py): what one search page may cost, at any size.
    search_rank_window: int = Field(default=500, ge=1, le=10_000)
    # A feed page first walks this many of the newest published items for the followed
    # authors' (src/slices/content/queries.py): its fixed cost; 0 reads per author only.
    feed_walk: int = Field(default=1000, ge=0, le=10_000)
    cache_reinvalidate_seconds: float = Field(default=5.0, ge=0)
    # With Redis, each process keeps a local copy of what it read (src/core/cache/near.py),
    # for at most this long (0: no local tier), bounded like the embedded cache.
    cache_local_ttl_seconds: float = Field(default=10.0, ge=0)
    cache_local_max_entries: int = Field(default=10_000, ge=1)
    cache_local_max_bytes: int = Field(default=32 * 1024 * 1024, ge=1)

    idempotency_ttl_seconds: int = Field(default=86400, gt=0)
    idempotency_lock_seconds: int = Field(default=60, gt=0)

    rate_limit_default: str = "600/minute"
    rate_limit_auth: str = "10/minute"
    rate_limit_enabled: bool = True
    # How often each process pushes its counts to Redis and reads the global ones back: the
    # overshoot across replicas grows with it (docs/api.md).
    rate_limit_sync_seconds: float = Field(default=0.1, gt=0)
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)

    ready_max_memory_percent: float = Field(default=95.0, gt=0, le=100)
    ready_max_disk_percent: float = Field(default=95.0, gt=0, le=100)
    ready_check_timeout_seconds: float = Field(default=1.0, gt=0)
    # Where cgroup v2 is mounted (memory figures of the container); tests point it elsewhere.
    ready_cgroup_root: str = "/sys/fs/cgroup"

    log_level: str = "INFO"
    log_format: Literal["json", "pretty"] | None = None

    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    web_concurrency: int = Field(default=1, ge=1)
    shutdown_drain_seconds: float = Field(default=5.0, ge=0)
    # What a connection may cost the server before the application sees it (src/server.py).
    http_max_header_bytes: int = Field(default=32 * 1024, ge=1024)
    http_header_timeout_seconds: float = Field(default=10.0, gt=0)
    http_body_timeout_seconds: float = Field(default=30.0, gt=0)
    http_keepalive_timeout_seconds: float = Field(default=5.0, gt=0)
    http_max_connections: int = Field(default=1000, ge=1)

    # The AI provider port (src/core/ai): `offline` (deterministic, from Inkwell's own
    # published content) or `openai` (any OpenAI-compatible Chat Completions endpoint).
    ai_provider: Literal["offline", "openai"] = "offline"
    ai_base_url: str | None = None
    ai_api_key: SecretStr | None = None  # a Secret in Kubernetes; never logged or answered
    ai_model: str | None = None
    ai_timeout_seconds: float = Field(default=30.0, gt=0)
    ai_context_messages: int = Field(default=20, ge=1)
    ai_daily_token_budget: int = Field(default=100_000, ge=0)

    # Event delivery (src/core/outbox): a stream entry idle this long is claimed by another
    # worker; an event whose handler fails this many times is dead-lettered. The worker
    # (`inkwell worker`, with REDIS_URL) serves its probes and metrics on WORKER_PORT.
    event_claim_seconds: float = Field(default=30.0, gt=0)
    event_max_attempts: int = Field(default=5, ge=1)
    worker_port: int = Field(default=9100, ge=0, le=65535)

    prometheus_multiproc_dir: str | None = None

    # Traces are exported over OTLP only when one of these is set; the OpenTelemetry SDK
    # reads its other standard variables (OTEL_TRACES_SAMPLER, OTEL_EXPORTER_OTLP_HEADERS, …).
    otel_exporter_otlp_endpoint: str | None = None
    otel_exporter_otlp_traces_endpoint: str | None = None
    # The OTLP transport; the signal-specific variable wins, as the OpenTelemetry spec says.
    otel_exporter_otlp_protocol: str | None = None
    otel_exporter_otlp_traces_protocol: str | None = None
    # Attribute names of the HTTP and database instrumentations: the stable conventions by
    # default (`http/dup,database/dup` emits the old names beside them while dashboards move).
    otel_semconv_stability_opt_in: str = "http,database"

    max_body_bytes: int = Field(default=1024 * 1024, ge=1)

    @field_validator("cors_origins", "trusted_proxies", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("log_level")
    @classmethod
    def _upper_level(cls, value: str) -> str:
        return value.upper()

    @field_validator("otel_exporter_otlp_protocol", "otel_exporter_otlp_traces_protocol")
    @classmethod
    def _supported_otlp_protocol(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        value = value.strip()
        if value not in SUPPORTED_OTLP_PROTOCOLS:
            raise ValueError(
                f"OTLP protocol {value!r} is not supported: Inkwell exports traces over "
                "OTLP/HTTP with protobuf bodies ('http/protobuf', the OpenTelemetry default). "
                "Unset the variable or set it to http/protobuf, and point "
                "OTEL_EXPORTER_OTLP_ENDPOINT at the collector's OTLP/HTTP port (4318 on Jaeger "
                "and the OpenTelemetry Collector)."
            )
        return value

    @model_validator(mode="after")
    def _refuse_default_secret_in_production(self) -> Settings:
        if self.app_env == "production" and self.jwt_secret == DEFAULT_JWT_SECRET:
            raise ValueError("JWT_SECRET must be set to a private value when APP_ENV=production")
        if self.app_env == "production" and len(self.jwt_secret) < 32:
            raise ValueError("JWT_SECRET must be at least 32 characters when APP_ENV=production")
        return self

    @model_validator(mode="after")
    def _openai_needs_endpoint_and_model(self) -> Settings:
        if self.ai_provider == "openai" and not (self.ai_base_url and self.ai_model):
            raise ValueError("AI_PROVIDER=openai needs AI_BASE_URL and AI_MODEL")
        if self.ai_base_url and not self.ai_base_url.startswith(("http://", "https://")):
            raise ValueError("AI_BASE_URL must be an http:// or https:// URL")
        return self

    @property
    def effective_read_database_url(self) -> str:
        return self.read_database_url or self.database_url

    @property
    def reads_from_replica(self) -> bool:
        return self.effective_read_database_url != self.database_url

    @property
    def effective_log_format(self) -> str:
        if self.log_format:
            return self.log_format
        return "pretty" if self.app_env == "development" else "json"

    @property
    def otlp_traces_protocol(self) -> str:
        return (
            self.otel_exporter_otlp_traces_protocol
            or self.otel_exporter_otlp_protocol
            or SUPPORTED_OTLP_PROTOCOLS[0]
        )

    @property
    def otlp_traces_endpoint(self) -> str | None:
        """The OTLP/HTTP traces URL: the signal-specific one as is, else `<base>/v1/traces`."""
        if self.otel_exporter_otlp_traces_endpoint:
            return self.otel_exporter_otlp_traces_endpoint
        if self.otel_exporter_otlp_endpoint:
            return self.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
        return None

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def hash_concurrency(self) -> int:
        return self.password_hash_concurrency or (os.cpu_count() or 1)
