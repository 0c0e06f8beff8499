"""Applying one delivered event: each subscribed handler, once.

For every handler subscribed to the event's type, its own transaction
(`command_transaction(unit_of_work())`) first inserts `(handler, event_id)` into
`processed_events` — insert-or-nothing — and then runs the handler; both commit together. A
row already there means the handler applied this event before (a redelivery: the worker died
before it acknowledged, two workers raced for an idle entry): outcome `duplicate`, the handler
is not called. On PostgreSQL a second transaction inserting the same key waits for the first
and then finds it, so even concurrent deliveries apply once. A handler that raises rolls its
transaction back, the key with it, so the next delivery tries again.

Each handler runs under a span whose parent is the trace context recorded with the event:
the handling joins the trace of the request that produced it. What is measured (outcomes,
commit-to-handled lag) goes to a `DeliveryObserver`; the metrics behind it live outside
`core` (src/observability/metrics.py).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any, Literal, Protocol

from loguru import logger
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from sqlalchemy import insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from src.core.db.uow import SqlUnitOfWork, UnitOfWork, command_transaction
from src.core.errors.types import is_dependency_failure
from src.core.events import DomainEvent, EventHandlers, EventMeta
from src.core.outbox.codec import EventCodec
from src.core.tables import processed_events, utcnow

tracer = trace.get_tracer(__name__)
_PROPAGATOR = TraceContextTextMapPropagator()

Outcome = Literal["done", "duplicate", "failed", "dead_lettered"]
# The handler label of a failure before any handler ran: the payload could not be decoded
# (an event type this process does not know, during a rolling deploy).
DECODE = "(decode)"


@dataclasses.dataclass(frozen=True, slots=True)
class Envelope:
    """An event as it travels: an outbox row, or a stream entry made from one."""

    event_id: uuid.UUID
    event_type: str
    aggregate_id: str | None
    payload: dict[str, Any]
    committed_at: dt.datetime
    traceparent: str | None = None
    tracestate: str | None = None
    position: int | None = None


class DeliveryObserver(Protocol):
    """What delivery reports, for metrics (`events_processed_total`, the lag histogram and
    `outbox_events_pending`)."""

    def processed(self, handler: str, outcome: Outcome) -> None: ...

    def lag(self, handler: str, seconds: float) -> None: ...

    def pending(self, count: int) -> None: ...


class NoObserver:
    def processed(self, handler: str, outcome: Outcome) -> None:
        pass

    def lag(self, handler: str, seconds: float) -> None:
        pass

    def pending(self, count: int) -> None:
        pass


@dataclasses.dataclass(frozen=True)
class Applied:
    """The result of one delivery: the handlers that failed, with their reasons, and which of
    them failed only because a dependency was unavailable (the database gone, a timeout)."""

    failures: dict[str, str]
    unavailable: frozenset[str] = frozenset()

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def transient(self) -> bool:
        """Every failure was a dependency's: the event is not at fault, and an outage must not
        use up its attempts (it is retried until the dependency is back)."""
        return bool(self.failures) and set(self.failures) <= self.unavailable

    @property
    def reason(self) -> str:
        return "; ".join(f"{name}: {why}" for name, why in sorted(self.failures.items()))


def _describe(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}"[:500] if text else type(error).__name__


async def record_processed(uow: UnitOfWork, handler: str, event_id: uuid.UUID) -> bool:
    """Insert `(handler, event_id)` unless it is there; whether it was inserted now."""
    values = {"handler": handler, "event_id": event_id, "processed_at": utcnow()}
    statement: Any
    if uow.dialect == "postgresql":
        statement = pg_insert(processed_events).values(values).on_conflict_do_nothing()
    elif uow.dialect == "sqlite":
        statement = sqlite_insert(processed_events).values(values).on_conflict_do_nothing()
    else:  # pragma: no cover - only the two backends are supported
        statement = insert(processed_events).values(values)
    result = await uow.execute(statement)
    return bool(getattr(result, "rowcount", 0) == 1)


class EventApplier:
    """Runs the handlers of delivered events (see the module docstring)."""

    def __init__(
        self,
        unit_of_work: Callable[[], SqlUnitOfWork],
        handlers: EventHandlers,
        codec: EventCodec,
        observer: DeliveryObserver | None = None,
    ) -> None:
        self._unit_of_work = unit_of_work
        self.handlers = handlers
        self.codec = codec
        self.observer: DeliveryObserver = observer or NoObserver()

    def handler_names(self, envelope: Envelope) -> list[str]:
        try:
            event_type = self.codec.event_type(envelope.event_type)
        except LookupError:
            return [DECODE]
        return [name for name, _ in self.handlers.for_event(event_type)]

    async def apply(self, envelope: Envelope) -> Applied:
        """Run every handler subscribed to the event (each at most once, ever)."""
        log = logger.bind(event_id=str(envelope.event_id), event_type=envelope.event_type)
        try:
            event = self.codec.decode(envelope.event_type, envelope.payload)
        except (LookupError, KeyError, TypeError, ValueError) as error:
            reason = _describe(error)
            log.warning("event could not be decoded: {}", reason)
            self.observer.processed(DECODE, "failed")
            return Applied({DECODE: reason})
        meta = EventMeta(event_id=envelope.event_id, committed_at=envelope.committed_at)
        parent = _PROPAGATOR.extract(
            {
                key: value
                for key, value in (
                    ("traceparent", envelope.traceparent),
                    ("tracestate", envelope.tracestate),
                )
                if value
            }
        )
        failures: dict[str, str] = {}
        unavailable: set[str] = set()
        for name, handler in self.handlers.for_event(type(event)):
            with tracer.start_as_current_span(
                f"event {name}",
                context=parent,
                kind=trace.SpanKind.CONSUMER,
                attributes={
                    "messaging.operation.type": "process",
                    "inkwell.event.id": str(envelope.event_id),
                    "inkwell.event.type": envelope.event_type,
                    "inkwell.event.handler": name,
                },
            ) as span:
                outcome = await self._run(name, handler, event, meta, log.bind(handler=name))
                span.set_attribute(
                    "inkwell.event.outcome", outcome if isinstance(outcome, str) else "failed"
                )
                if not isinstance(outcome, str):
                    failures[name] = _describe(outcome)
                    if is_dependency_failure(outcome):
                        unavailable.add(name)
                    span.record_exception(outcome)
                    span.set_status(trace.StatusCode.ERROR, failures[name])
        return Applied(failures, frozenset(unavailable))

    async def _run(
        self,
        name: str,
        handler: Any,
        event: DomainEvent,
        meta: EventMeta,
        log: Any,
    ) -> Outcome | Exception:
        try:
            async with command_transaction(self._unit_of_work()) as uow:
                if not await record_processed(uow, name, meta.event_id):
                    outcome: Outcome = "duplicate"
                else:
                    await handler(uow, event, meta)
                    outcome = "done"
        except Exception as error:
            log.opt(exception=error).warning("event handler failed: {}", _describe(error))
            self.observer.processed(name, "failed")
            return error
        self.observer.processed(name, outcome)
        if outcome == "done":
            lag = max((utcnow() - meta.committed_at).total_seconds(), 0.0)
            self.observer.lag(name, lag)
            log.info("event handled in {:.3f}s after its commit", lag)
        else:
            log.debug("event already handled: duplicate delivery")
        return outcome

    def dead_lettered(self, envelope: Envelope, applied: Applied) -> None:
        """Count and log an event given up on (its failing handlers will never see it)."""
        for name in applied.failures:
            self.observer.processed(name, "dead_lettered")
        logger.bind(event_id=str(envelope.event_id), event_type=envelope.event_type).error(
            "event dead-lettered: {}", applied.reason
        )
