"""Prometheus metrics, named exactly as the HTTP contract lists them.

One `Metrics` object per application, with its own registry (created in `create_app`, never at
import time). With `PROMETHEUS_MULTIPROC_DIR` set (several uvicorn workers), prometheus-client
writes every sample to per-process files and `/metrics` aggregates them; exemplars are not
available in that mode (a prometheus-client limitation).
"""

from __future__ import annotations

import asyncio
import os
import platform
from collections.abc import Callable
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from src import __version__

# OpenTelemetry HTTP semantic-convention buckets for http.server.request.duration (seconds).
HTTP_DURATION_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)
# OpenTelemetry GenAI semantic-convention buckets for gen_ai.client.operation.duration.
AI_DURATION_BUCKETS = (
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
)

# Commit of an event → handled: resolves the embedded runner's 10–200 ms and a worker's
# sub-second lag, up to the 30 s a dead worker's entries wait before another claims them.
EVENT_LAG_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class HeldConnections(Protocol):
    """Connections kept checked out of a pool between statements (`DriverConnections`)."""

    @property
    def held(self) -> int: ...


class Children:
    """A labelled metric's children by their label values, each kept once made.

    `labels()` checks and converts its values and takes a lock on every call, which was a
    measurable share of a cached read; the metrics counted per request go through this
    instead. Label values are bounded (methods, route templates, statuses, cache names and
    outcomes), so the dictionary is too.
    """

    __slots__ = ("_made", "_metric")

    def __init__(self, metric: Any) -> None:
        self._metric = metric
        self._made: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        child = self._made.get(values)
        if child is None:
            child = self._made[values] = self._metric.labels(*values)
        return child


class Metrics:
    def __init__(self, multiprocess_dir: str | None = None) -> None:
        self.multiprocess = bool(multiprocess_dir)
        self._multiprocess_dir = multiprocess_dir
        self._pool_updates: list[Callable[[], None]] = []
        self.registry = CollectorRegistry(auto_describe=True)
        registry = None if self.multiprocess else self.registry
        self.request_duration = Histogram(
            "http_server_request_duration_seconds",
            "Duration of HTTP server requests.",
            ["http_request_method", "http_route", "http_response_status_code"],
            buckets=HTTP_DURATION_BUCKETS,
            registry=registry,
        )
        self.request_durations = Children(self.request_duration)
        self.active_requests = Gauge(
            "http_server_active_requests",
            "Number of HTTP server requests in flight.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.signup_requests = Counter(
            "signup_requests", "Signup attempts by outcome.", ["status"], registry=registry
        )
        self.idempotency_requests = Counter(
            "idempotency_requests",
            "Requests carrying an Idempotency-Key, by outcome.",
            ["outcome"],
            registry=registry,
        )
        self.cache_requests = Counter(
            "cache_requests",
            "Cache look-ups by cache and result.",
            ["cache", "result"],
            registry=registry,
        )
        self.cache_request_counts = Children(self.cache_requests)
        self.rate_limited_requests = Counter(
            "rate_limited_requests",
            "Requests refused with 429 by the rate limiter.",
            ["http_route"],
            registry=registry,
        )
        self.rate_limiter_errors = Counter(
            "rate_limiter_errors",
            "Rate-limit checks that failed open because the limiter storage was unreachable.",
            registry=registry,
        )
        self.cache_errors = Counter(
            "cache_errors",
            "Cache operations that failed (the request was served from the database).",
            ["cache", "operation"],
            registry=registry,
        )
        self.ai_requests = Counter(
            "ai_requests",
            "AI provider calls by provider, operation (draft|chat) and outcome "
            "(ok|unavailable|quota_exceeded).",
            ["provider", "operation", "outcome"],
            registry=registry,
        )
        self.ai_request_duration = Histogram(
            "ai_request_duration_seconds",
            "Time the AI provider took per call (to its final answer or its failure), by "
            "provider, operation and outcome.",
            ["provider", "operation", "outcome"],
            buckets=AI_DURATION_BUCKETS,
            registry=registry,
        )
        self.ai_tokens = Counter(
            "ai_tokens",
            "Tokens used by AI provider calls, by provider and kind (prompt|completion).",
            ["provider", "kind"],
            registry=registry,
        )
        self.events_processed = Counter(
            "events_processed",
            "Event deliveries to a handler, by handler and outcome "
            "(done|duplicate|failed|dead_lettered).",
            ["handler", "outcome"],
            registry=registry,
        )
        self.event_delivery_lag = Histogram(
            "event_delivery_lag_seconds",
            "Time from the commit of an event to its handling, by handler.",
            ["handler"],
            buckets=EVENT_LAG_BUCKETS,
            registry=registry,
        )
        self.outbox_events_pending = Gauge(
            "outbox_events_pending",
            "Events committed and not yet handled by every handler.",
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.db_pool_connections = Gauge(
            "db_pool_connections",
            "Database pool connections by engine and state.",
            ["engine", "state"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        # What is running, for dashboards and alerts to join on (`* on (instance) group_left`);
        # a gauge, not an Info metric, so that it also works in multiprocess mode.
        self.build_info = Gauge(
            "inkwell_build_info",
            "Inkwell build information; the value is always 1.",
            ["version", "python_version", "python_implementation"],
            registry=registry,
            multiprocess_mode="max",
        )
        self.build_info.labels(
            __version__, platform.python_version(), platform.python_implementation()
        ).set(1)
        if self.multiprocess:
            MultiProcessCollector(self.registry, path=multiprocess_dir)  # type: ignore[no-untyped-call]

    def watch_pool(
        self, role: str, engine: AsyncEngine, held: HeldConnections | None = None
    ) -> None:
        """Keep `db_pool_connections{engine=role}` current from the pool's own events.

        The pool fires `checkin` before the connection is back in its queue, so the figures
        are read once the event has run (on the next turn of the event loop), and again at
        every scrape. Connections `held` between hot statements are checked out of the pool
        but serve no request: they count as idle.
        """
        pool = engine.sync_engine.pool
        checked_out = self.db_pool_connections.labels(engine=role, state="checked_out")
        idle = self.db_pool_connections.labels(engine=role, state="idle")

        def update() -> None:
            status_out = getattr(pool, "checkedout", None)
            status_in = getattr(pool, "checkedin", None)
            if status_out is not None and status_in is not None:
                kept = 0 if held is None else held.held
                checked_out.set(status_out() - kept)
                idle.set(status_in() + kept)

        def soon(*_: Any) -> None:
            try:
                asyncio.get_running_loop().call_soon(update)
            except RuntimeError:  # used outside an event loop (migrations, CLI)
                update()

        for name in ("checkout", "checkin", "connect", "close", "invalidate"):
            event.listen(pool, name, soon)
        self._pool_updates.append(update)
        update()

    def refresh(self) -> None:
        """Bring the figures read from elsewhere (pools) up to date; called at each scrape."""
        for update in self._pool_updates:
            update()

    def close(self) -> None:
        """In multiprocess mode, drop this worker's live gauges (active requests, pools)."""
        if self._multiprocess_dir:
            mark_process_dead(os.getpid(), self._multiprocess_dir)  # type: ignore[no-untyped-call]


class EventMetrics:
    """The event delivery's observer (src/core/outbox/delivery.py) on these metrics."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def processed(self, handler: str, outcome: str) -> None:
        self._metrics.events_processed.labels(handler, outcome).inc()

    def lag(self, handler: str, seconds: float) -> None:
        self._metrics.event_delivery_lag.labels(handler).observe(seconds)

    def pending(self, count: int) -> None:
        self._metrics.outbox_events_pending.set(count)
