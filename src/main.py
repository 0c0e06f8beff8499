"""`create_app(settings)`: wiring only. Middleware order: docs/architecture.md#middleware-order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from redis.asyncio import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.middleware.cors import CORSMiddleware

from src import __version__
from src.core.ai.budget import TokenBudget
from src.core.ai.gateway import AIGateway
from src.core.ai.offline import OfflineProvider
from src.core.ai.openai_compatible import OpenAICompatibleProvider
from src.core.ai.port import AIProvider
from src.core.cache.backends import MemoryBackend, RedisBackend
from src.core.cache.near import InvalidationSubscriber, LocalTier, channel_name
from src.core.cache.policy import Cache
from src.core.cache.port import CacheBackend
from src.core.db.engines import Database, create_engine
from src.core.errors.handlers import install_error_handlers
from src.core.errors.openapi import install_openapi, operation_id
from src.core.events import EventDispatcher, EventHandlers
from src.core.outbox.codec import EventCodec
from src.core.outbox.delivery import EventApplier
from src.core.outbox.recorder import OutboxRecorder
from src.core.outbox.runner import OutboxRunner
from src.core.pagination import CursorCodec
from src.core.resources import Resources
from src.core.security import PasswordHasher, TokenService
from src.docs_ui import install_docs
from src.middleware.boundary import CommandBoundary
from src.middleware.edge import Edge
from src.middleware.hot_reads import HotReads
from src.middleware.idempotency.store import IdempotencyStore
from src.middleware.rate_limit import RateLimitMiddleware, build_counter, build_limiter
from src.observability.ai import InstrumentedProvider, MetricsObserver
from src.observability.logging import configure_logging, stop_log_writer
from src.observability.metrics import EventMetrics, Metrics
from src.observability.tracing import configure_tracing
from src.probes import router as probes
from src.probes.lifecycle import Lifecycle, install_sigterm_drain, process_lifecycle
from src.runtime import Runtime
from src.settings import Settings
from src.slices.ai import router as ai
from src.slices.auth import router as auth
from src.slices.content import hot as content_hot
from src.slices.content import projector as content_projector
from src.slices.content import router as content
from src.slices.content.drafts import ContentDraftWriter
from src.slices.content.search import published_search
from src.slices.conversations import router as conversations
from src.slices.notifications import handlers as notification_handlers
from src.slices.notifications import router as notifications
from src.slices.signup import router as signup
from src.slices.users import hot as users_hot
from src.slices.users import projector as users_projector
from src.slices.users import router as users


def build_dispatcher(cache: Cache | None = None) -> EventDispatcher:
    """Every projector of every slice, subscribed to the events it keeps read models with
    (`cache`: what the projectors invalidate after commit, where a process keeps one)."""
    dispatcher = EventDispatcher()
    users_projector.register(dispatcher)
    content_projector.register(dispatcher, cache)
    return dispatcher


def build_handlers() -> EventHandlers:
    """Every event handler of every slice (run off the outbox, each in its own transaction,
    by the event worker or, without Redis, by the serve process)."""
    handlers = EventHandlers()
    notification_handlers.register(handlers)
    return handlers


def build_recorder() -> OutboxRecorder:
    """The outbox recorder every unit of work runs: each event an outbox row, in the
    command's transaction (the codec knows every event class of the imported slices)."""
    return OutboxRecorder(EventCodec.of_application())


def build_outbox_engine(settings: Settings) -> AsyncEngine:
    """The engine the outbox's reader (the embedded runner, the relay) keeps its bookkeeping
    and its lock connection on: a small pool of its own, so the requests' pool and its
    figures never count them. (Handlers write through the write engine, as commands do.)"""
    small = settings.model_copy(update={"db_pool_size": 2, "db_max_overflow": 1})
    return create_engine(settings.database_url, small, "write")


def build_redis(settings: Settings) -> Redis | None:
    """The shared Redis client (cache, rate limits), or None for the embedded default.

    Short timeouts and no automatic retries: when Redis is slow or gone, callers fall back at
    once (the cache to the database, the rate limiter open) instead of stacking up waits.
    """
    if not settings.redis_url:
        return None
    return Redis.from_url(
        settings.redis_url,
        socket_timeout=settings.redis_timeout_seconds,
        socket_connect_timeout=settings.redis_timeout_seconds,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=30,
    )


def build_cache(settings: Settings, redis: Redis | None, metrics: Metrics) -> Cache:
    backend: CacheBackend
    local: LocalTier | None = None
    if redis is not None:
        channel = channel_name(settings.redis_key_prefix)
        backend = RedisBackend(redis, settings.redis_key_prefix, channel)
        if settings.cache_local_ttl_seconds > 0:
            local = LocalTier(
                settings.cache_local_max_entries,
                settings.cache_local_max_bytes,
                settings.cache_local_ttl_seconds,
            )
    else:
        backend = MemoryBackend(
            settings.content_cache_max_entries, settings.content_cache_max_bytes
        )
    return Cache(
        backend,
        name="redis" if redis is not None else "memory",
        count=lambda cache, result: metrics.cache_request_counts(cache, result).inc(),
        count_error=lambda operation: metrics.cache_errors.labels("redis", operation).inc(),
        # Reads from a replica may refill a key before the replica has replayed the write.
        reinvalidate_after=settings.cache_reinvalidate_seconds
        if settings.reads_from_replica
        else 0.0,
        local=local,
    )


def start_invalidation_subscriber(
    settings: Settings, redis: Redis | None, cache: Cache
) -> InvalidationSubscriber | None:
    """The task that keeps the cache's local tier coherent (none without one)."""
    if redis is None or cache.local is None:
        return None
    subscriber = InvalidationSubscriber(redis, channel_name(settings.redis_key_prefix), cache.local)
    subscriber.start()
    return subscriber


# How long an admitted AI call keeps its user's lease past the provider's deadline (the
# charge's commit, a slow database) before another call of the same user may take it over.
AI_LEASE_MARGIN_SECONDS = 15.0


def build_ai_provider(
    settings: Settings, database: Database, cache: Cache, cursors: CursorCodec
) -> AIProvider:
    """The configured adapter: `openai` (one pooled httpx client) or `offline` (grounded in
    the content slice's search)."""
    if settings.ai_provider == "openai":
        return OpenAICompatibleProvider(
            settings.ai_base_url or "",
            settings.ai_model or "",
            settings.ai_api_key,
            settings.ai_timeout_seconds,
            probe_timeout_seconds=settings.ready_check_timeout_seconds,
        )
    search = published_search(
        database.read,
        cache,
        cursors,
        settings.content_cache_ttl_seconds,
        settings.search_rank_window,
    )
    return OfflineProvider(search)


def build_ai(
    settings: Settings, database: Database, cache: Cache, cursors: CursorCodec, metrics: Metrics
) -> AIGateway:
    """The provider, instrumented (GenAI spans), behind the daily token budget (metrics)."""
    provider = InstrumentedProvider(build_ai_provider(settings, database, cache, cursors))
    budget = TokenBudget(
        database.write_engine,
        settings.ai_daily_token_budget,
        lease_seconds=settings.ai_timeout_seconds + AI_LEASE_MARGIN_SECONDS,
        wait_seconds=settings.ai_timeout_seconds,
    )
    return AIGateway(provider, budget, MetricsObserver(metrics))


def create_app(
    settings: Settings | None = None,
    *,
    lifecycle: Lifecycle | None = None,
    drain_on_sigterm: bool = False,
    handlers: EventHandlers | None = None,
) -> FastAPI:
    """The application. `handlers`: the event handlers the embedded runner delivers to (the
    slices' own, `build_handlers()`, unless a test brings its own)."""
    settings = settings or Settings()
    event_handlers = handlers if handlers is not None else build_handlers()
    lifecycle = lifecycle or process_lifecycle
    configure_logging(settings.log_level, settings.effective_log_format)
    tracing = configure_tracing(settings)  # once per process: the first call decides

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = Database(settings)
        metrics = Metrics(settings.prometheus_multiproc_dir)
        for role, engine in database.engines.items():
            metrics.watch_pool(role, engine, held=database.drivers[role])
        hasher = PasswordHasher(settings.bcrypt_rounds, settings.hash_concurrency)
        redis = build_redis(settings)
        if redis is not None:
            tracing.instrument_redis(redis)
        cache = build_cache(settings, redis, metrics)
        subscriber = start_invalidation_subscriber(settings, redis, cache)
        rate_counter = build_counter(settings, redis, metrics)
        rate_counter.start()
        cursors = CursorCodec(settings.jwt_secret)
        recorder = build_recorder()
        resources = Resources(
            settings=settings,
            database=database,
            dispatcher=build_dispatcher(cache),
            hasher=hasher,
            tokens=TokenService(
                settings.jwt_secret,
                settings.access_token_ttl_seconds,
                settings.refresh_token_ttl_seconds,
            ),
            cursors=cursors,
            cache=cache,
            signup_outcomes=metrics.signup_requests,
            redis=redis,
            event_recorders=(recorder,),
            ai=build_ai(settings, database, cache, cursors, metrics),
            create_draft=ContentDraftWriter(cache),
        )
        app.state.resources = resources
        app.state.runtime = Runtime(
            resources=resources,
            metrics=metrics,
            rate_limiter=build_limiter(settings),
            rate_counter=rate_counter,
            idempotency=IdempotencyStore(
                database.write_engine,
                settings.idempotency_ttl_seconds,
                settings.idempotency_lock_seconds,
            ),
            lifecycle=lifecycle,
        )
        if drain_on_sigterm:
            install_sigterm_drain(lifecycle, settings.shutdown_drain_seconds)
        # Without Redis this process delivers the events itself; with it, `inkwell worker`
        # does (src/worker.py) and the outbox only grows here.
        runner: OutboxRunner | None = None
        outbox_engine: AsyncEngine | None = None
        if redis is None:
            outbox_engine = build_outbox_engine(settings)
            runner = OutboxRunner(
                outbox_engine,
                EventApplier(
                    resources.unit_of_work, event_handlers, recorder.codec, EventMetrics(metrics)
                ),
                max_attempts=settings.event_max_attempts,
            )
            recorder.on_commit(runner.wake)
            runner.start()
        app.state.event_runner = runner
        try:
            yield
        finally:
            if runner is not None:
                await runner.stop()
            if outbox_engine is not None:
                await outbox_engine.dispose()
            await resources.ai_gateway.provider.aclose()
            await rate_counter.close()
            if subscriber is not None:
                await subscriber.close()
            await resources.cache.close()
            hasher.close()
            if redis is not None:
                await redis.aclose()
            await database.dispose()
            metrics.close()
            await tracing.flush()
            # Queued lines are written before the server's last steps (see stop_log_writer).
            await asyncio.to_thread(stop_log_writer)

    app = FastAPI(
        title="Inkwell",
        version=__version__,
        summary="Sign up, log in, publish and read content.",
        lifespan=lifespan,
        generate_unique_id_function=operation_id,  # createContent, getUser, signUp, …
        docs_url=None,  # served from packaged assets by install_docs, not from a CDN
        redoc_url=None,
        # Traces come from src/observability/tracing.py and HTTP metrics from
        # prometheus-client; FastAPI's own telemetry would add a second set of both.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
        # No trailing-slash redirects: Starlette builds their Location from the client's Host
        # header. `/api/v1/content/` is a 404 like any other path the API does not serve.
        redirect_slashes=False,
    )
    app.state.settings = settings
    app.state.lifecycle = lifecycle
    app.state.tracing = tracing
    install_error_handlers(app)
    install_openapi(app)
    install_docs(app)

    app.include_router(probes.router)
    app.include_router(signup.router)
    app.include_router(auth.router)
    app.include_router(users.router)
    app.include_router(users.admin_router)
    app.include_router(content.router)
    app.include_router(content.own_content_router)
    app.include_router(content.tags_router)
    app.include_router(ai.router)
    app.include_router(conversations.router)
    app.include_router(notifications.router)

    # add_middleware wraps: the last added is the outermost.
    app.add_middleware(CommandBoundary)
    app.add_middleware(HotReads, reads=[*content_hot.HOT_READS, *users_hot.HOT_READS])
    app.add_middleware(RateLimitMiddleware, settings=settings)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "Idempotency-Key",
                "X-Request-ID",
                "X-Correlation-ID",
            ],
            expose_headers=[
                "Location",
                "X-Request-ID",
                "X-Correlation-ID",
                "RateLimit",
                "RateLimit-Policy",
                "Retry-After",
                "Idempotent-Replayed",
                "Cache-Status",
            ],
        )
    app.add_middleware(Edge, max_body_bytes=settings.max_body_bytes)
    tracing.instrument_app(app)  # the server span wraps the whole stack
    return app


def create_served_app() -> FastAPI:
    """Factory for `inkwell serve` (uvicorn `--factory`), run once in each worker process:
    settings from the environment, the process's tracing, and SIGTERM drains before shutting
    down."""
    settings = Settings()
    configure_tracing(settings)
    return create_app(settings, drain_on_sigterm=True)
