"""Rate limiting (pure ASGI): counted in process, shared through Redis in the background.

* Every request is limited per client by `RATE_LIMIT_DEFAULT` — the API's routes and any other
  path alike (a 404 or 405 costs as much as an answer) — and signup, login, token and refresh
  by `RATE_LIMIT_AUTH` instead. Never limited: GET/HEAD of the probes, `/metrics` and the docs.
* The client is the authenticated user (a valid bearer token), else the socket's IP address;
  `X-Forwarded-For` is believed only when the socket peer is one of `TRUSTED_PROXIES`. On the
  auth routes the client is always the address: a token is something the caller chooses to
  send, and keying by it would give whoever holds a few accounts a fresh budget of password
  guesses with each one.
* Sliding-window counters. The default policy is counted in process and synchronised with
  Redis every `RATE_LIMIT_SYNC_SECONDS` (`rate_counter.py`): no Redis round trip on the
  request path, at the price of a bounded overshoot across replicas (docs/api.md). The auth
  policy (signup, login, token, refresh, password changes) keeps an exact check in Redis per
  request with the `limits` library: its limit is small (10/minute), what it guards is password
  guessing, and those routes cost a bcrypt hash anyway. Without `REDIS_URL` both are counted
  in process, exactly.
* Every limited response carries `RateLimit-Policy` and `RateLimit` (IETF
  draft-ietf-httpapi-ratelimit-headers); a refusal is a 429 `rate_limited` problem with
  `Retry-After`, counted in `rate_limited_requests_total{http_route}`.
* If Redis is unreachable nothing fails: the default policy goes on counting in process (each
  replica limits on its own), the auth policy's exact check fails open (served, without
  headers) and is not tried again for a second; failures are counted
  (`rate_limiter_errors_total`) and logged at most once a minute. An outage adds no latency.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage, Storage
from limits.aio.strategies import RateLimiter, SlidingWindowCounterRateLimiter
from loguru import logger
from redis.asyncio import Redis
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from src.core.errors.problems import send_problem
from src.core.identity import caller_from_scope
from src.core.security import TokenService
from src.middleware.rate_counter import RateCounter
from src.middleware.routes import route_template
from src.observability.metrics import Metrics
from src.runtime import runtime_of
from src.settings import Settings

AUTH_PATHS = frozenset(
    {"/api/v1/signup", "/api/v1/auth/login", "/api/v1/auth/token", "/api/v1/auth/refresh"}
)
# Routes that check a password of a signed-in caller: the auth budget, per caller (a stolen
# access token must not buy 600 guesses a minute at the current password).
PASSWORD_PATHS = frozenset({"/api/v1/users/me/password"})
# Polled by orchestrators and scrapers, and read by people: GET and HEAD only (a POST to
# /health is junk like any other). The docs' own assets live under /docs/.
_UNLIMITED_PATHS = frozenset(
    {"/health", "/ready", "/metrics", "/openapi.json", "/docs", "/redoc", "/docs/oauth2-redirect"}
)
_UNLIMITED_PREFIXES = ("/docs/", "/redoc/")
_RETRY_STORAGE_AFTER = 1.0
_LOG_EVERY = 60.0


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    item: RateLimitItem

    @property
    def header(self) -> bytes:
        window = self.item.get_expiry()
        return f'"{self.name}";q={self.item.amount};w={window}'.encode()


def build_storage(settings: Settings) -> Storage | None:
    if settings.redis_url:
        return RedisStorage(
            settings.redis_url,
            implementation="redispy",
            wrap_exceptions=True,
            key_prefix=settings.redis_key_prefix + "ratelimit",
            socket_timeout=settings.redis_timeout_seconds,
            socket_connect_timeout=settings.redis_timeout_seconds,
        )
    return None


def build_limiter(settings: Settings) -> RateLimiter | None:
    """The exact, per-request check of the auth policy: with Redis only (without it the
    in-process counter is exact already)."""
    storage = build_storage(settings)
    return SlidingWindowCounterRateLimiter(storage) if storage is not None else None


def build_counter(settings: Settings, redis: Redis | None, metrics: Metrics) -> RateCounter:
    return RateCounter(
        redis,
        settings.redis_key_prefix,
        settings.rate_limit_sync_seconds,
        on_error=metrics.rate_limiter_errors.inc,
    )


def never_limited(scope: Scope) -> bool:
    path: str = scope["path"]
    return scope["method"] in ("GET", "HEAD") and (
        path in _UNLIMITED_PATHS or path.startswith(_UNLIMITED_PREFIXES)
    )


def parse_networks(
    entries: Iterable[str],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


class RateLimitMiddleware:
    """Reads its limiter (created in the lifespan) from the application's resources."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.enabled = settings.rate_limit_enabled
        self.default = Policy("default", parse(settings.rate_limit_default))
        self.auth = Policy("auth", parse(settings.rate_limit_auth))
        self.trusted = parse_networks(settings.trusted_proxies)
        self._down_until = 0.0
        self._last_logged = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.enabled or scope["type"] != "http" or never_limited(scope):
            await self.app(scope, receive, send)
            return
        runtime = runtime_of(scope)
        auth = scope["path"] in AUTH_PATHS
        policy = self.auth if auth or scope["path"] in PASSWORD_PATHS else self.default
        client = (
            f"ip:{self._client_ip(scope)}"
            if auth
            else self._client(scope, runtime.resources.tokens)
        )
        remaining: int | None
        if policy is self.auth and runtime.rate_limiter is not None:
            remaining, reset = await self._hit(
                runtime.rate_limiter, policy, client, runtime.metrics
            )
        else:
            item = policy.item
            remaining, reset = runtime.rate_counter.hit(
                policy.name, item.amount, item.get_expiry(), client
            )
        if remaining is None:  # storage down: fail open, without headers we cannot vouch for
            await self.app(scope, receive, send)
            return
        headers = [
            (b"ratelimit-policy", policy.header),
            (b"ratelimit", f'"{policy.name}";r={max(remaining, 0)};t={reset}'.encode()),
        ]
        if remaining < 0:
            runtime.metrics.rate_limited_requests.labels(route_template(scope)).inc()
            await send_problem(
                send,
                scope,
                429,
                "rate_limited",
                "Too many requests; slow down and retry later.",
                [(b"retry-after", str(max(reset, 1)).encode()), *headers],
            )
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _hit(
        self, limiter: RateLimiter, policy: Policy, client: str, metrics: Metrics
    ) -> tuple[int | None, int]:
        """(remaining after this hit — negative when refused, seconds until reset)."""
        now = time.monotonic()
        if now < self._down_until:
            return None, 0
        try:
            allowed = await limiter.hit(policy.item, policy.name, client)
            stats = await limiter.get_window_stats(policy.item, policy.name, client)
        except Exception as error:
            self._down_until = now + _RETRY_STORAGE_AFTER
            metrics.rate_limiter_errors.inc()
            if now - self._last_logged >= _LOG_EVERY:
                self._last_logged = now
                logger.warning(
                    "rate-limit storage unreachable ({}): failing open", type(error).__name__
                )
            return None, 0
        reset = max(0, math.ceil(stats.reset_time - time.time()))
        return (stats.remaining if allowed else -1), reset

    def _client(self, scope: Scope, tokens: TokenService) -> str:
        user = caller_from_scope(scope, tokens)
        if user is not None:
            return f"user:{user}"
        return f"ip:{self._client_ip(scope)}"

    def _client_ip(self, scope: Scope) -> str:
        peer = scope.get("client")
        address: str = peer[0] if peer else "unknown"
        if not self.trusted or not self._is_trusted(address):
            return address
        forwarded: list[str] = [
            value.decode("latin-1")
            for name, value in scope["headers"]
            if name == b"x-forwarded-for"
        ]
        hops = [hop.strip() for value in forwarded for hop in value.split(",") if hop.strip()]
        # Walk from the nearest hop outwards; the first address we don't trust is the client.
        for hop in reversed(hops):
            if not self._is_trusted(hop):
                return hop
        return hops[0] if hops else address

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.trusted)
