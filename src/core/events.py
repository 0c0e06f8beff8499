"""Domain events and their in-transaction dispatch to projectors.

A command's unit of work records events (`uow.emit(...)`); when the boundary commits it, before
the one COMMIT, every event is handed to the projectors subscribed to its type, on the
command's own connection. The read tables therefore change in the same transaction as the
write tables: either both or neither.

A projector may answer work to do once the transaction has committed (dropping the cached
copies of the rows it rewrote, which only it knows); the unit of work runs it with the other
after-commit hooks, and never if the transaction rolls back.
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
