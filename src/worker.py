"""`inkwell worker`: the event worker of a deployment with Redis.

`create_worker(settings)` builds it: the relay (committed outbox rows → the stream
`<REDIS_KEY_PREFIX>events`, one relay active at a time) and a consumer of the group (each event
to its handlers, exactly once per handler; src/core/outbox/stream.py), plus `/health`,
`/ready` (database and Redis, 503 while draining) and `/metrics` on `WORKER_PORT` — the
probes router of the API, on a small application of its own.

SIGTERM drains: `/ready` turns 503, the consumer stops reading, the events in flight finish
and are acknowledged, then the process exits 0. A second SIGTERM, or SIGINT, stops at once.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI
from loguru import logger
from redis.asyncio import Redis

from src import __version__
from src.core.db.engines import Database
from src.core.db.uow import SqlUnitOfWork
from src.core.events import EventHandlers
from src.core.outbox.delivery import EventApplier
from src.core.outbox.locks import AdvisoryLock, ReaderLock, RedisLease
from src.core.outbox.stream import Consumer, Relay
from src.core.pagination import CursorCodec
from src.core.resources import Resources
from src.core.security import PasswordHasher, TokenService
from src.main import (
    build_cache,
    build_dispatcher,
    build_handlers,
    build_outbox_engine,
    build_recorder,
    build_redis,
)
from src.middleware.idempotency.store import IdempotencyStore
from src.middleware.rate_limit import build_counter
from src.observability.logging import configure_logging
from src.observability.metrics import EventMetrics, Metrics
from src.observability.tracing import configure_tracing
from src.probes import router as probes
from src.probes.lifecycle import Lifecycle
from src.runtime import Runtime
from src.settings import Settings

# How often the worker refreshes `outbox_events_pending` (outbox rows + stream backlog).
PENDING_EVERY_SECONDS = 1.0
# A blocking XREADGROUP waits up to a second; the consumer's client must wait longer.
CONSUMER_SOCKET_TIMEOUT_SECONDS = 5.0


class Worker:
    def __init__(
        self,
        settings: Settings,
        handlers: EventHandlers | None = None,
        lifecycle: Lifecycle | None = None,
        *,
        concurrency: int = 16,
    ) -> None:
        if not settings.redis_url:
            raise ValueError(
                "inkwell worker needs REDIS_URL; without Redis, inkwell serve delivers the "
                "events itself"
            )
        self.settings = settings
        self.handlers = handlers if handlers is not None else build_handlers()
        self.lifecycle = lifecycle or Lifecycle()
        self.concurrency = concurrency
        self.consumer: Consumer | None = None
        self.relay: Relay | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._drained = asyncio.Event()
        # Set by `run_worker`: SIGTERM drains, then this stops the server (exit status 0).
        self.on_drained: Callable[[], None] | None = None
        self.app = FastAPI(
            title="Inkwell worker",
            version=__version__,
            lifespan=self._lifespan,
            docs_url=None,
            redoc_url=None,
            openapi_url=None,
        )
        self.app.state.probe_role = "worker"
        self.app.include_router(probes.router)

    @asynccontextmanager
    async def _lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        settings = self.settings
        database = Database(settings)
        metrics = Metrics(settings.prometheus_multiproc_dir)
        metrics.watch_pool("write", database.write_engine, held=database.primary)
        redis = build_redis(settings)
        assert redis is not None
        stream_redis = Redis.from_url(
            settings.redis_url or "",
            socket_timeout=CONSUMER_SOCKET_TIMEOUT_SECONDS,
            socket_connect_timeout=settings.redis_timeout_seconds,
        )
        cache = build_cache(settings, redis, metrics)
        dispatcher = build_dispatcher(cache)
        recorder = build_recorder()
        hasher = PasswordHasher(settings.bcrypt_rounds, 1)
        resources = Resources(
            settings=settings,
            database=database,
            dispatcher=dispatcher,
            hasher=hasher,
            tokens=TokenService(
                settings.jwt_secret,
                settings.access_token_ttl_seconds,
                settings.refresh_token_ttl_seconds,
            ),
            cursors=CursorCodec(settings.jwt_secret),
            cache=cache,
            signup_outcomes=metrics.signup_requests,
            redis=redis,
            event_recorders=(recorder,),
        )
        app.state.resources = resources
        app.state.runtime = Runtime(
            resources=resources,
            metrics=metrics,
            # The worker's port serves only probes and metrics, which are never limited: an
            # idle in-process counter and no Redis limiter.
            rate_limiter=None,
            rate_counter=build_counter(settings, None, metrics),
            idempotency=IdempotencyStore(
                database.write_engine,
                settings.idempotency_ttl_seconds,
                settings.idempotency_lock_seconds,
            ),
            lifecycle=self.lifecycle,
        )

        def unit_of_work() -> SqlUnitOfWork:
            return SqlUnitOfWork(database.write_engine, dispatcher, (recorder,))

        observer = EventMetrics(metrics)
        applier = EventApplier(unit_of_work, self.handlers, recorder.codec, observer)
        outbox_engine = build_outbox_engine(settings)
        prefix = settings.redis_key_prefix
        lock: ReaderLock
        if outbox_engine.dialect.name == "postgresql":
            lock = AdvisoryLock(outbox_engine)
        else:
            lock = RedisLease(redis, f"{prefix}events:relay")
        self.relay = Relay(outbox_engine, stream_redis, prefix, lock)
        self.consumer = Consumer(
            stream_redis,
            prefix,
            applier,
            max_attempts=settings.event_max_attempts,
            claim_seconds=settings.event_claim_seconds,
            concurrency=self.concurrency,
        )
        consumer, relay = self.consumer, self.relay

        async def report_pending() -> None:
            from src.core.outbox import store

            while not self._drained.is_set():
                try:
                    waiting = await store.count_undelivered(outbox_engine)
                    observer.pending(waiting + await consumer.pending())
                except Exception:
                    logger.opt(exception=True).debug("pending events not counted")
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._drained.wait(), PENDING_EVERY_SECONDS)

        self._tasks = [
            asyncio.create_task(relay.run(), name="outbox-relay"),
            asyncio.create_task(consumer.run(), name="event-consumer"),
            asyncio.create_task(report_pending(), name="events-pending"),
        ]
        if self.on_drained is not None:
            self._take_over_sigterm()
        logger.info("event worker {} started", consumer.name)
        try:
            yield
        finally:
            await self.drain()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await cache.close()
            hasher.close()
            await stream_redis.aclose()
            await redis.aclose()
            await outbox_engine.dispose()
            await database.dispose()
            metrics.close()

    def _take_over_sigterm(self) -> None:
        """Replace the server's SIGTERM handler (installed before the lifespan starts): drain
        first, then stop the server; the server never sees the signal, so it exits 0."""
        loop = asyncio.get_running_loop()
        on_drained = self.on_drained
        assert on_drained is not None

        async def drain_then_exit() -> None:
            await self.drain()
            on_drained()

        def on_sigterm(sig: int, frame: FrameType | None) -> None:
            if self.lifecycle.draining:  # a second SIGTERM: stop now
                loop.call_soon_threadsafe(on_drained)
                return
            self.lifecycle.draining = True
            loop.call_soon_threadsafe(
                lambda: self._tasks.append(loop.create_task(drain_then_exit()))
            )

        handler: Any = on_sigterm
        signal.signal(signal.SIGTERM, handler)

    async def drain(self) -> None:
        """Stop reading and relaying; let the events in flight finish and be acknowledged."""
        if self._drained.is_set():
            return
        self.lifecycle.draining = True
        if self.consumer is not None:
            await self.consumer.stop()
        if self.relay is not None:
            await self.relay.stop()
        self._drained.set()
        logger.info("event worker drained")


def create_worker(
    settings: Settings | None = None,
    *,
    handlers: EventHandlers | None = None,
    lifecycle: Lifecycle | None = None,
) -> Worker:
    settings = settings or Settings()
    configure_logging(settings.log_level, settings.effective_log_format)
    configure_tracing(settings)
    return Worker(settings, handlers, lifecycle)


def run_worker(settings: Settings, handlers: EventHandlers | None = None) -> int:
    """`inkwell worker`: serve the worker's probes on WORKER_PORT until SIGTERM drains it."""
    worker = create_worker(settings, handlers=handlers)
    config = uvicorn.Config(
        worker.app,
        host=settings.host,
        port=settings.worker_port,
        lifespan="on",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)

    def exit_now() -> None:
        server.should_exit = True

    worker.on_drained = exit_now
    server.run()
    return 0
