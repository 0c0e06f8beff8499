"""Inkwell's API and worker as real processes, with test handlers whose effect is counted.

Beside the application's own handlers (the notifications slice's), each counting handler
inserts one row into `test_effects` per application — a plain insert, no key —
so an event applied twice by one handler shows as two rows: "exactly one effect per event and
handler" is one row per `(event_id, handler)`. Users named "Poison…" make them fail.
`TEST_HANDLER_DELAY` (seconds) makes each application slow, so a process can be killed with
events in flight.

* API: `uvicorn --factory tests.resilience.event_apps:create_app`
* worker: `python -m tests.resilience.event_apps`
"""

from __future__ import annotations

import asyncio
import os
import sys

from fastapi import FastAPI
from sqlalchemy import text

from src.core.db.uow import UnitOfWork
from src.core.events import EventHandlers, EventMeta
from src.main import build_handlers
from src.main import create_app as create_inkwell_app
from src.observability.tracing import configure_tracing
from src.settings import Settings
from src.slices.signup.events import UserSignedUp
from src.worker import run_worker

HANDLERS = ("test.effect_a", "test.effect_b")
EFFECTS_DDL = (
    "CREATE TABLE test_effects (event_id VARCHAR(36), handler VARCHAR(100), user_id VARCHAR(36))"
)


def handlers() -> EventHandlers:
    """The application's own handlers (notifications) and the two counting ones."""
    delay = float(os.environ.get("TEST_HANDLER_DELAY", "0"))
    subscribed = build_handlers()
    for name in HANDLERS:

        def handler(name: str = name):  # type: ignore[no-untyped-def]
            async def handle(uow: UnitOfWork, event: UserSignedUp, meta: EventMeta) -> None:
                if event.name.startswith("Poison"):
                    raise RuntimeError("poison event")
                if delay:
                    await asyncio.sleep(delay)
                await uow.execute(
                    text(
                        "INSERT INTO test_effects (event_id, handler, user_id) VALUES (:e, :h, :u)"
                    ),
                    {"e": str(meta.event_id), "h": name, "u": str(event.user_id)},
                )

            return handle

        subscribed.subscribe(name, UserSignedUp, handler())
    return subscribed


def create_app() -> FastAPI:
    settings = Settings()
    configure_tracing(settings)
    return create_inkwell_app(settings, drain_on_sigterm=True, handlers=handlers())


if __name__ == "__main__":
    sys.exit(run_worker(Settings(), handlers=handlers()))
