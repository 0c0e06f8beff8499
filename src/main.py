"""`create_app(settings)`: wiring only — middleware order, routers, lifespan.

Request path (outermost first):
  OpenTelemetry server span → request context (ids, access line, metrics, last-resort errors)
  → security headers → body limit → CORS → router → use case.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from src import __version__
from src.core.db import Database
from src.core.errors import install_error_handlers
from src.core.events import EventDispatcher
from src.core.pagination import CursorCodec
from src.core.resources import Resources
from src.core.security import PasswordHasher, TokenService
from src.middleware.request_context import RequestContextMiddleware
from src.middleware.security_headers import BodyLimitMiddleware, SecurityHeadersMiddleware
from src.observability.logging import configure_logging
from src.observability.metrics import Metrics
from src.observability.tracing import Tracing
from src.probes import router as probes
from src.probes.lifecycle import Lifecycle, install_sigterm_drain, process_lifecycle
from src.settings import Settings
from src.slices.signup import router as signup
from src.slices.users import projector as users_projector
from src.slices.users import router as users


def build_dispatcher() -> EventDispatcher:
    """Every projector of every slice, subscribed to the events it keeps read models with."""
    dispatcher = EventDispatcher()
    users_projector.register(dispatcher)
    return dispatcher


def create_app(
    settings: Settings | None = None,
    *,
    lifecycle: Lifecycle | None = None,
    drain_on_sigterm: bool = False,
) -> FastAPI:
    settings = settings or Settings()
    lifecycle = lifecycle or process_lifecycle
    configure_logging(settings.log_level, settings.effective_log_format)
    tracing = Tracing(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = Database(settings)
        tracing.start(database.engines.values())
        metrics = Metrics(settings.prometheus_multiproc_dir)
        for role, engine in database.engines.items():
            metrics.watch_pool(role, engine)
        hasher = PasswordHasher(settings.bcrypt_rounds, settings.hash_concurrency)
        app.state.resources = Resources(
            settings=settings,
            database=database,
            dispatcher=build_dispatcher(),
            hasher=hasher,
            tokens=TokenService(
                settings.jwt_secret,
                settings.access_token_ttl_seconds,
                settings.refresh_token_ttl_seconds,
            ),
            cursors=CursorCodec(settings.jwt_secret),
            metrics=metrics,
        )
        if drain_on_sigterm:
            install_sigterm_drain(lifecycle, settings.shutdown_drain_seconds)
        try:
            yield
        finally:
            hasher.close()
            await database.dispose()
            metrics.close()
            await tracing.shutdown()

    app = FastAPI(
        title="Inkwell",
        version=__version__,
        summary="Sign up, log in, publish and read content.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.lifecycle = lifecycle
    app.state.tracing = tracing
    install_error_handlers(app)

    app.include_router(probes.router)
    app.include_router(signup.router)
    app.include_router(users.router)

    # add_middleware wraps: the last added is the outermost.
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
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(RequestContextMiddleware)
    tracing.instrument_app(app)  # the server span wraps the whole stack
    return app


def create_served_app() -> FastAPI:
    """Factory for `inkwell serve` (uvicorn `--factory`): settings from the environment, and
    SIGTERM drains before shutting down."""
    return create_app(Settings(), drain_on_sigterm=True)
