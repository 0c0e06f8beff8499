"""The application's long-lived resources, created in the lifespan and closed in it.

Routers reach them through `Depends(resources)`; middleware through `scope["app"].state`.
Tests build their own application with their own settings, so nothing here is global.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import Request
from limits.aio.strategies import RateLimiter
from redis.asyncio import Redis

from src.core.cache import Cache
from src.core.db import Database, UnitOfWork
from src.core.events import EventDispatcher
from src.core.pagination import CursorCodec
from src.core.security import PasswordHasher, TokenService
from src.settings import Settings

if TYPE_CHECKING:
    from src.observability.metrics import Metrics


@dataclass
class Resources:
    settings: Settings
    database: Database
    dispatcher: EventDispatcher
    hasher: PasswordHasher
    tokens: TokenService
    cursors: CursorCodec
    metrics: Metrics
    cache: Cache
    rate_limiter: RateLimiter
    redis: Redis | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(self.database.write_engine, self.dispatcher)


async def resources(request: Request) -> Resources:
    # async on purpose: FastAPI runs a plain `def` dependency in a worker thread, which would
    # cost every request a thread hop for one attribute read.
    resources: Resources = request.app.state.resources
    return resources
