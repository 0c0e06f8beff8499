"""The embedded default: the serve process delivers every committed event to its handlers,
each exactly once, through the HTTP API on both backends' databases."""

from __future__ import annotations

import uuid

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from src.core.outbox import store
from src.core.outbox.runner import OutboxRunner
from tests.conftest import Backend, _empty_tables
from tests.events.conftest import (
    Calls,
    app_with_handlers,
    eventually,
    handlers_for_tests,
    outbox_rows,
    processed,
    sample,
)
from tests.helpers import authed_user, publish, sign_up


async def test_a_signup_reaches_its_handlers_once(
    embedded: httpx.AsyncClient, calls: Calls
) -> None:
    user = await sign_up(embedded)

    async def handled() -> bool:
        return len(await processed(embedded)) == 2

    await eventually(handled)
    (row,) = await outbox_rows(embedded)
    assert [str(event.user_id) for _, _, event in calls.of("test.signed_up")] == [user["id"]]
    assert await processed(embedded) == sorted(
        [("test.poison", row["event_id"]), ("test.signed_up", row["event_id"])]
    )


async def test_delivered_rows_are_marked_and_nothing_is_pending(
    embedded: httpx.AsyncClient,
) -> None:
    author = await authed_user(embedded)
    await publish(embedded, author)

    async def delivered() -> bool:
        rows = await outbox_rows(embedded)
        return len(rows) == 3 and all(row["delivered_at"] is not None for row in rows)

    await eventually(delivered)
    await eventually(lambda: _pending_is(embedded, 0))


async def _pending_is(client: httpx.AsyncClient, value: float) -> bool:
    return sample(client, "outbox_events_pending") == value


async def test_a_redelivered_event_is_a_no_op(embedded: httpx.AsyncClient, calls: Calls) -> None:
    await sign_up(embedded)

    async def handled() -> bool:
        return len(await processed(embedded)) == 2

    await eventually(handled)
    (row,) = await outbox_rows(embedded)
    runner = embedded.app.state.event_runner  # type: ignore[attr-defined]
    applied = await runner.applier.apply(store.envelope_of(_Row(row)))
    assert applied.ok
    assert len(calls.of("test.signed_up")) == 1
    assert (
        sample(
            embedded,
            "events_processed_total",
            {"handler": "test.signed_up", "outcome": "duplicate"},
        )
        == 1
    )
    assert (
        sample(embedded, "events_processed_total", {"handler": "test.signed_up", "outcome": "done"})
        == 1
    )


class _Row:
    """Attribute access to a mapping row (what `envelope_of` reads)."""

    def __init__(self, mapping: object) -> None:
        self.__dict__.update(dict(mapping))  # type: ignore[call-overload]


async def test_a_poison_event_is_dead_lettered_after_its_attempts(
    embedded: httpx.AsyncClient, calls: Calls
) -> None:
    poison = await sign_up(embedded, name="Poison Pill")

    async def dead() -> bool:
        rows = await outbox_rows(embedded)
        return bool(rows) and rows[0]["dead_at"] is not None

    await eventually(dead)
    (row,) = await outbox_rows(embedded)
    assert row["attempts"] == 3  # EVENT_MAX_ATTEMPTS of the fixture
    assert "RuntimeError" in row["last_error"]
    assert row["delivered_at"] is None
    assert len(calls.of("test.poison")) == 3
    assert len(calls.of("test.signed_up")) == 1  # the other handler applied it once
    assert (
        sample(embedded, "events_processed_total", {"handler": "test.poison", "outcome": "failed"})
        == 3
    )
    assert (
        sample(
            embedded,
            "events_processed_total",
            {"handler": "test.poison", "outcome": "dead_lettered"},
        )
        == 1
    )
    # Never tried again: a later event is handled, the dead one stays as it was.
    later = await sign_up(embedded)

    async def later_handled() -> bool:
        return any(str(e.user_id) == later["id"] for _, _, e in calls.of("test.signed_up"))

    await eventually(later_handled)
    assert len(calls.of("test.poison")) == 3
    assert poison["id"] != later["id"]
    await eventually(lambda: _pending_is(embedded, 0))  # a dead event is not pending


async def test_a_failing_event_does_not_hold_up_other_aggregates(
    backend: Backend, calls: Calls
) -> None:
    await _empty_tables(backend.database_url)
    async with app_with_handlers(
        backend, handlers_for_tests(calls), redis_url=None, event_max_attempts=1000
    ) as client:
        await sign_up(client, name="Poison Again")
        other = await sign_up(client)

        async def other_delivered() -> bool:
            rows = await outbox_rows(client)
            return len(rows) == 2 and rows[1]["delivered_at"] is not None

        await eventually(other_delivered)
        poison_row, other_row = await outbox_rows(client)
        assert other_row["payload"]["user_id"] == other["id"]
        assert poison_row["delivered_at"] is None
        assert poison_row["dead_at"] is None  # still being retried behind it


async def test_the_lag_is_measured_per_handler(embedded: httpx.AsyncClient) -> None:
    for _ in range(3):
        await sign_up(embedded)

    async def handled() -> bool:
        return len(await processed(embedded)) == 6

    await eventually(handled)
    labels = {"handler": "test.signed_up"}
    assert sample(embedded, "event_delivery_lag_seconds_count", labels) == 3
    assert sample(embedded, "event_delivery_lag_seconds_sum", labels) > 0


async def test_the_handling_span_joins_the_requests_trace(
    embedded: httpx.AsyncClient, recorded_spans: InMemorySpanExporter
) -> None:
    trace_id = uuid.uuid4().hex
    response = await embedded.post(
        "/api/v1/signup",
        json={"name": "Traced", "email": f"t.{uuid.uuid4().hex[:8]}@example.com",
              "password": "correct horse battery"},
        headers={"traceparent": f"00-{trace_id}-b7ad6b7169203331-01"},
    )  # fmt: skip
    assert response.status_code == 201

    def handler_spans() -> list[object]:
        return [s for s in recorded_spans.get_finished_spans() if s.name == "event test.signed_up"]

    async def traced() -> bool:
        return bool(handler_spans())

    await eventually(traced)
    (span,) = handler_spans()
    assert format(span.context.trace_id, "032x") == trace_id  # type: ignore[attr-defined]
    assert span.attributes["inkwell.event.outcome"] == "done"  # type: ignore[attr-defined]


@pytest.mark.parametrize("count", [20])
async def test_many_events_are_each_handled_once(
    embedded: httpx.AsyncClient, calls: Calls, count: int
) -> None:
    users = [await sign_up(embedded) for _ in range(count)]

    async def handled() -> bool:
        return (
            len(calls.of("test.signed_up")) >= count and len(await processed(embedded)) == 2 * count
        )

    await eventually(handled)
    seen = [str(e.user_id) for _, _, e in calls.of("test.signed_up")]
    assert sorted(seen) == sorted(user["id"] for user in users)


async def test_the_pending_gauge_counts_events_not_yet_handled(embedded: httpx.AsyncClient) -> None:
    runner = embedded.app.state.event_runner  # type: ignore[attr-defined]
    await runner.stop()  # nothing delivers now
    for n in range(3):
        await sign_up(embedded, name=f"Poison {n}")  # their handler fails: they stay pending
    engine = embedded.app.state.resources.database.write_engine  # type: ignore[attr-defined]
    one_pass = OutboxRunner(engine, runner.applier, max_attempts=3)
    await one_pass.run_once()
    assert sample(embedded, "outbox_events_pending") == 3
    await sign_up(embedded)
    await one_pass.run_once()  # the new one is handled; the others wait for their retry
    assert sample(embedded, "outbox_events_pending") == 3
