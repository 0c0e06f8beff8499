"""Domain events and their in-transaction dispatch to projectors.

A command's unit of work records events (`uow.emit(...)`); when the boundary commits it, before
the one COMMIT, every event is handed to the projectors subscribed to its type, on the
command's own connection. The read tables therefore change in the same transaction as the
write tables: either both or neither.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection


@dataclass(frozen=True, slots=True, kw_only=True)
class DomainEvent:
    """Base class of every event; subclasses are frozen dataclasses named in the past tense."""


E = TypeVar("E", bound=DomainEvent)
Projector = Callable[["AsyncConnection", Any], Awaitable[None]]


class EventDispatcher:
    """Maps event types to the projectors that keep read models in step."""

    def __init__(self) -> None:
        self._projectors: dict[type[DomainEvent], list[Projector]] = defaultdict(list)

    def subscribe(
        self, event_type: type[E], projector: Callable[[AsyncConnection, E], Awaitable[None]]
    ) -> None:
        self._projectors[event_type].append(projector)

    async def dispatch(self, connection: AsyncConnection, event: DomainEvent) -> None:
        for projector in self._projectors.get(type(event), ()):
            await projector(connection, event)
