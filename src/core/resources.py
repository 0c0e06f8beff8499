"""The application's long-lived resources, and the dependencies routers reach them through.

Created in the lifespan and closed in it; tests build their own application with their own
settings, so nothing here is global. Routers take what a use case needs:

* `Depends(resources)` for the long-lived pieces (hasher, tokens, cache, settings);
* `Depends(unit_of_work)` in a command: the unit of work the command boundary opened for this
  request (commands never open or commit one themselves);
* `Depends(read_side)` in a query: the read handle, never an engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Request
from prometheus_client import Counter
from redis.asyncio import Redis

from src.core.ai.gateway import AIGateway
from src.core.cache.policy import Cache
from src.core.db.engines import Database
from src.core.db.read import ReadHandle
from src.core.db.uow import EventRecorder, SqlUnitOfWork, UnitOfWork
from src.core.drafts import DraftWriter
from src.core.events import EventDispatcher
from src.core.pagination import CursorCodec
from src.core.security import PasswordHasher, TokenService
from src.settings import Settings

# Where the command boundary keeps the request's unit of work in the ASGI scope.
UNIT_OF_WORK_KEY = "inkwell.unit_of_work"


@dataclass
class Resources:
    """What the slices' use cases are built from. (The layers around the slices — edge, rate
    limit, command boundary, probes — have theirs in `src/runtime.py`.)"""

    settings: Settings
    database: Database
    dispatcher: EventDispatcher
    hasher: PasswordHasher
    tokens: TokenService
    cursors: CursorCodec
    cache: Cache
    signup_outcomes: Counter  # signup_requests_total{status}
    redis: Redis | None = None
    event_recorders: tuple[EventRecorder, ...] = ()
    # The AI provider behind the token budget (src/core/ai/gateway.py), and the content
    # slice's draft command for other slices (src/core/drafts.py); wired in src/main.py.
    ai: AIGateway | None = None
    create_draft: DraftWriter | None = None

    @property
    def ai_gateway(self) -> AIGateway:
        if self.ai is None:
            raise RuntimeError("no AI gateway is wired (src/main.py)")
        return self.ai

    @property
    def draft_writer(self) -> DraftWriter:
        if self.create_draft is None:
            raise RuntimeError("no draft writer is wired (src/main.py)")
        return self.create_draft

    def unit_of_work(self) -> SqlUnitOfWork:
        """A new unit of work on the primary, for a boundary to end (HTTP, CLI, worker)."""
        return SqlUnitOfWork(self.database.write_engine, self.dispatcher, self.event_recorders)


async def resources(request: Request) -> Resources:
    # async on purpose: FastAPI runs a plain `def` dependency in a worker thread, which would
    # cost every request a thread hop for one attribute read.
    found: Resources = request.app.state.resources
    return found


async def unit_of_work(request: Request) -> UnitOfWork:
    """The unit of work of this command request (see `src/middleware/boundary.py`)."""
    uow: Any = request.scope.get(UNIT_OF_WORK_KEY)
    if uow is None:
        raise RuntimeError(
            f"{request.method} {request.url.path} has no unit of work: commands run behind "
            "the command boundary"
        )
    found: UnitOfWork = uow
    return found


async def read_side(request: Request) -> ReadHandle:
    found: ReadHandle = request.app.state.resources.database.read
    return found
