"""The outbox recorder: every event a command emits becomes an `outbox` row, in the command's
transaction (the unit of work runs it just before the COMMIT, after the projectors).

The row carries what delivery needs and the request cannot give later: the event's id (the
deduplication key of every handler), its type and JSON payload, the aggregate it orders by,
the W3C trace context of the span current at the commit (so the handling span joins the
producing request's trace), and the commit time (the origin of the delivery lag).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from src.core.db.uow import AfterCommitHook
from src.core.events import DomainEvent
from src.core.outbox.codec import EventCodec, aggregate_of
from src.core.tables import outbox, utcnow

_PROPAGATOR = TraceContextTextMapPropagator()


def current_trace_context() -> tuple[str | None, str | None]:
    """The `traceparent` and `tracestate` of the current span (None outside any span)."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent"), carrier.get("tracestate") or None


class OutboxRecorder:
    """An `EventRecorder` (src/core/db/uow.py) writing to `outbox`.

    `on_commit` callbacks run after a COMMIT that recorded events: the embedded runner
    subscribes, so a local commit wakes it at once instead of at its next poll.
    """

    def __init__(self, codec: EventCodec) -> None:
        self.codec = codec
        self._listeners: list[Callable[[], None]] = []

    def on_commit(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    async def __call__(
        self, connection: AsyncConnection, events: Sequence[DomainEvent]
    ) -> AfterCommitHook | None:
        traceparent, tracestate = current_trace_context()
        committed_at = utcnow()
        rows: list[dict[str, Any]] = []
        for event in events:
            type_name, payload = self.codec.encode(event)
            rows.append(
                {
                    "event_id": uuid.uuid4(),
                    "event_type": type_name,
                    "aggregate_id": aggregate_of(event),
                    "payload": payload,
                    "traceparent": traceparent,
                    "tracestate": tracestate[:512] if tracestate else None,
                    "committed_at": committed_at,
                }
            )
        await connection.execute(insert(outbox), rows)
        if not self._listeners:
            return None
        return self._notify

    async def _notify(self) -> None:
        for listener in self._listeners:
            listener()
