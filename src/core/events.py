"""Domain events and their in-transaction dispatch to projectors.

A command's unit of work records events (`uow.emit(...)`); when the boundary commits it, before
the one COMMIT, every event is handed to the projectors subscribed to its type, on the
command's own connection. The read tables therefore change in the same transaction as the
write tables: either both or neither.

A projector may answer work to do once the transaction has committed (dropping the cached
copies of the rows it rewrote, which only it knows); the unit of work runs it with the other
after-commit hooks, and never if the transaction rolls back.

Work that may lag — notifications, anything slow or external — is done by *handlers*, never
inside the request: every event also goes to the outbox in the command's transaction, and the
event worker (or, without Redis, the serve process itself) delivers it afterwards to each
handler subscribed to its type. A handler runs in its own unit of work, which also records
`(handler name, event id)` as processed: a redelivered event is a no-op for a handler that has
applied it, so at-least-once delivery gives exactly-once effects.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from src.core.db.uow import UnitOfWork


@dataclass(frozen=True, slots=True, kw_only=True)
class DomainEvent:
    """Base class of every event; subclasses are frozen dataclasses named in the past tense."""


E = TypeVar("E", bound=DomainEvent)
AfterCommit = Callable[[], Awaitable[None]]
Projector = Callable[["AsyncConnection", Any], Awaitable["AfterCommit | None"]]


class EventDispatcher:
    """Maps event types to the projectors that keep read models in step."""

    def __init__(self) -> None:
        self._projectors: dict[type[DomainEvent], list[Projector]] = defaultdict(list)

    def subscribe(
        self,
        event_type: type[E],
        projector: Callable[[AsyncConnection, E], Awaitable[AfterCommit | None]],
    ) -> None:
        self._projectors[event_type].append(projector)

    async def dispatch(self, connection: AsyncConnection, event: DomainEvent) -> list[AfterCommit]:
        """Run the projectors of `event`; the after-commit work they asked for."""
        hooks: list[AfterCommit] = []
        for projector in self._projectors.get(type(event), ()):
            hook = await projector(connection, event)
            if hook is not None:
                hooks.append(hook)
        return hooks


@dataclass(frozen=True, slots=True, kw_only=True)
class EventMeta:
    """What a handler knows of a delivered event beyond the event itself."""

    event_id: uuid.UUID  # the outbox row's id: the same on every redelivery
    committed_at: dt.datetime  # when the command that emitted it committed (UTC)


EventHandler = Callable[["UnitOfWork", Any, EventMeta], Awaitable[None]]


class EventHandlers:
    """Maps event types to the handlers the event worker runs, each under a stable name.

    The name is what `processed_events` records (so it must never change once deployed) and
    what `events_processed_total{handler}` is labelled with, e.g. `notifications.new_follower`.
    """

    def __init__(self) -> None:
        self._by_type: dict[type[DomainEvent], list[tuple[str, EventHandler]]] = defaultdict(list)
        self._names: set[str] = set()

    def subscribe(
        self,
        name: str,
        event_type: type[E],
        handler: Callable[[UnitOfWork, E, EventMeta], Awaitable[None]],
    ) -> None:
        if name in self._names:
            raise ValueError(f"an event handler named {name!r} is already subscribed")
        self._names.add(name)
        self._by_type[event_type].append((name, handler))

    def for_event(self, event_type: type[DomainEvent]) -> list[tuple[str, EventHandler]]:
        """The `(name, handler)` pairs subscribed to `event_type`, in subscription order."""
        return list(self._by_type.get(event_type, ()))

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._names)
