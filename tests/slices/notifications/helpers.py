"""Running the notifications slice's handlers as the delivery code does, without it: each
event in a unit of work of its own, built from the application's resources."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

import httpx

from src.core.db.uow import command_transaction
from src.core.events import DomainEvent, EventMeta
from src.core.tables import utcnow
from src.main import build_handlers


def resources_of(client: httpx.AsyncClient) -> Any:
    return client.app.state.resources  # type: ignore[attr-defined]


def meta(event_id: uuid.UUID | None = None, at: dt.datetime | None = None) -> EventMeta:
    return EventMeta(event_id=event_id or uuid.uuid4(), committed_at=at or utcnow())


async def deliver(client: httpx.AsyncClient, event: DomainEvent, event_meta: EventMeta) -> None:
    """Every handler `build_handlers()` subscribes to the event's type, each in its own
    transaction (as the worker runs them)."""
    for _name, handler in build_handlers().for_event(type(event)):
        async with command_transaction(resources_of(client).unit_of_work()) as uow:
            await handler(uow, event, event_meta)


class EventLog:
    """Records the events every command of the application commits (an event recorder, as
    the outbox's is), so a test can deliver them to the handlers."""

    def __init__(self) -> None:
        self.events: list[DomainEvent] = []

    async def __call__(self, _connection: Any, events: Sequence[DomainEvent]) -> None:
        self.events.extend(events)

    def of_type(self, kind: type[DomainEvent]) -> list[Any]:
        return [event for event in self.events if isinstance(event, kind)]


def record_events(client: httpx.AsyncClient) -> EventLog:
    log = EventLog()
    resources = resources_of(client)
    resources.event_recorders = (*resources.event_recorders, log)
    return log


async def deliver_recorded(client: httpx.AsyncClient, log: EventLog) -> None:
    """Deliver every recorded event once, each with an id of its own."""
    events, log.events = log.events, []
    for event in events:
        await deliver(client, event, meta())
