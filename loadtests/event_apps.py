"""Inkwell's API and worker with one measuring handler, for `events_lag.py`.

The handler `load.lag` stores, per event, the time from the event's commit to its handling
(`lag_ms`) and when it was handled (`handled_at`, epoch seconds) in `load_lag`.

* API (embedded default: it delivers too):
  `uvicorn --factory --app-dir loadtests event_apps:create_app`
* worker (with REDIS_URL): `python loadtests/event_apps.py`
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastapi import FastAPI
from sqlalchemy import text

from src.core.db.uow import UnitOfWork
from src.core.events import EventHandlers, EventMeta
from src.core.tables import utcnow
from src.main import create_app as create_inkwell_app
from src.observability.tracing import configure_tracing
from src.settings import Settings
from src.slices.users.events import ProfileUpdated
from src.worker import run_worker

LAG_DDL = (
    "CREATE TABLE load_lag (event_id VARCHAR(36), lag_ms DOUBLE PRECISION, "
    "handled_at DOUBLE PRECISION)"
)


async def record_lag(uow: UnitOfWork, event: Any, meta: EventMeta) -> None:
    lag_ms = (utcnow() - meta.committed_at).total_seconds() * 1000
    await uow.execute(
        text("INSERT INTO load_lag (event_id, lag_ms, handled_at) VALUES (:e, :l, :h)"),
        {"e": str(meta.event_id), "l": lag_ms, "h": time.time()},
    )


def handlers() -> EventHandlers:
    subscribed = EventHandlers()
    subscribed.subscribe("load.lag", ProfileUpdated, record_lag)
    return subscribed


def create_app() -> FastAPI:
    settings = Settings()
    configure_tracing(settings)
    return create_inkwell_app(settings, drain_on_sigterm=True, handlers=handlers())


if __name__ == "__main__":
    sys.exit(run_worker(Settings(), handlers=handlers()))
