"""`/health` (liveness), `/ready` (readiness) and `/metrics`.

Liveness touches nothing but the process: a database outage must never get pods restarted.
Readiness checks each dependency concurrently with its own short timeout and reads CPU, memory
and disk figures without sleeping on the event loop (memory and disk: the container's own,
src/probes/resources.py). It answers 503 naming the failing check when a required dependency
(the databases) or a resource fails, and from the moment SIGTERM arrives, so the pod leaves
the Service before it stops; an optional dependency (Redis, the AI provider) that fails leaves
it serving, 200 `degraded`. Adding an optional dependency is one `Dependency` line in
`dependencies()`.
Probe bodies are plain JSON (their `status` is a word), even on 503.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from fastapi import APIRouter, Request
from opentelemetry.instrumentation.utils import suppress_instrumentation
from prometheus_client.exposition import choose_encoder
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.responses import JSONResponse, PlainTextResponse, Response

from src import __version__
from src.probes.resources import data_directory, disk_figures, memory_figures
from src.runtime import Runtime
from src.settings import Settings

router = APIRouter(include_in_schema=True, tags=["probes"])

Check = dict[str, Any]


@router.get("/health", summary="Liveness: the process is up (touches no dependency)")
async def get_health(request: Request) -> JSONResponse:
    """Liveness: 200 while the process runs, with its service name, version and uptime. It
    touches no dependency, so a database outage never gets the process restarted."""
    runtime: Runtime = request.app.state.runtime
    lifecycle = runtime.lifecycle
    return JSONResponse(
        {
            "status": "ok",
            "service": runtime.resources.settings.service_name,
            "version": __version__,
            "uptime_seconds": round(lifecycle.uptime(), 3),
        }
    )


@dataclass(frozen=True)
class Dependency:
    """One dependency `/ready` pings. A required one that fails makes the pod unready (503);
    an optional one — the service answers without it — makes it `degraded` (still 200), so
    one shared optional dependency going away never empties the whole Service."""

    name: str
    required: bool
    ping: Callable[[], Awaitable[Any]] | None  # None: not configured, reported as skipped


def dependencies(runtime: Runtime, role: str = "api") -> list[Dependency]:
    """Every dependency `/ready` checks, in the order its body lists them.

    The event worker (`role="worker"`, src/worker.py) needs both the database and Redis to do
    anything at all: both are required there."""
    res = runtime.resources
    redis = res.redis
    if role == "worker":
        return [
            Dependency("database", True, lambda: _ping_database(res.database.write_engine)),
            Dependency("redis", True, redis.ping if redis is not None else None),
        ]
    return [
        Dependency("database", True, lambda: _ping_database(res.database.write_engine)),
        Dependency("read_database", True, lambda: _ping_database(res.database.read_engine)),
        # Without Redis the cache is bypassed and the rate limiter fails open.
        Dependency("redis", False, redis.ping if redis is not None else None),
        # Without the AI provider, AI answers 503 `ai_unavailable`; everything else serves.
        Dependency("ai", False, res.ai.provider.ping if res.ai is not None else None),
    ]


@router.get(
    "/ready",
    summary="Readiness: dependencies reachable, resources within limits, not draining",
    responses={503: {"description": "Not ready", "content": {"application/json": {}}}},
)
async def get_readiness(request: Request) -> JSONResponse:
    """200 `ready`, or 200 `degraded` naming a failed optional dependency (Redis), or 503
    `not_ready` when the database or the read database is unreachable, memory or disk use is
    above its threshold, or the process is draining after SIGTERM. Each check has a short
    timeout; memory and disk are the container's own figures (cgroup v2) where there is one."""
    runtime: Runtime = request.app.state.runtime
    settings = runtime.resources.settings
    timeout = settings.ready_check_timeout_seconds
    wanted = dependencies(runtime, getattr(request.app.state, "probe_role", "api"))
    with suppress_instrumentation():  # probes are polled every few seconds: no SQL/Redis spans
        results = await asyncio.gather(
            *(_timed(d.ping(), timeout) if d.ping else _skipped() for d in wanted)
        )
    checks: dict[str, Check] = {d.name: result for d, result in zip(wanted, results, strict=True)}
    checks["cpu"] = _cpu()
    checks["memory"] = _memory(settings)
    checks["disk"] = _disk(settings)
    blocking = {d.name for d in wanted if d.required} | {"cpu", "memory", "disk"}
    failed = {name for name, check in checks.items() if check["status"] == "fail"}
    draining = runtime.lifecycle.draining
    if draining or failed & blocking:
        status, code = "not_ready", 503
    else:
        status, code = ("degraded" if failed else "ready"), 200
    body: dict[str, Any] = {"status": status, "checks": checks}
    if draining:
        body["draining"] = True
    return JSONResponse(body, status_code=code)


_EXPOSITION = {"schema": {"type": "string"}}


@router.get(
    "/metrics",
    summary="Prometheus metrics (OpenMetrics when asked for)",
    response_class=PlainTextResponse,
    responses={200: {"content": {"application/openmetrics-text": _EXPOSITION}}},
)
async def get_metrics(request: Request) -> Response:
    """The Prometheus exposition of the process's metrics (every worker's, with several); in
    the OpenMetrics format, with trace-id exemplars, when the scraper asks for it."""
    metrics = request.app.state.runtime.metrics
    encoder, content_type = choose_encoder(request.headers.get("accept", ""))
    metrics.refresh()
    if metrics.multiprocess:  # reads every worker's files: keep that off the event loop
        body = await asyncio.to_thread(encoder, metrics.registry)
    else:
        body = encoder(metrics.registry)
    return Response(body, media_type=None, headers={"Content-Type": content_type})


async def _ping_database(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


async def _timed(probe: Awaitable[Any], timeout: float) -> Check:
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        await asyncio.wait_for(probe, timeout)
    except TimeoutError:
        return {"status": "fail", "error": f"timed out after {timeout:g}s"}
    except Exception as error:
        return {"status": "fail", "error": type(error).__name__}
    return {"status": "ok", "latency_ms": round((loop.time() - start) * 1000, 2)}


async def _skipped() -> Check:
    return {"status": "skipped"}


def _cpu() -> Check:
    # interval=None compares with the previous call: no sleep on the event loop.
    return {
        "status": "ok",
        "usage_percent": psutil.cpu_percent(interval=None),
        "count": psutil.cpu_count(),
    }


def _memory(settings: Settings) -> Check:
    limit = settings.ready_max_memory_percent
    memory = memory_figures(Path(settings.ready_cgroup_root))
    return {
        "status": "ok" if memory.used_percent <= limit else "fail",
        "used_percent": memory.used_percent,
        "available_mb": round(memory.available_bytes / 2**20),
        "limit_mb": round(memory.limit_bytes / 2**20),
        "source": memory.source,
        "threshold_percent": limit,
    }


def _disk(settings: Settings) -> Check:
    limit = settings.ready_max_disk_percent
    disk = disk_figures(data_directory(settings))
    return {
        "status": "ok" if disk.used_percent <= limit else "fail",
        "used_percent": disk.used_percent,
        "free_gb": round(disk.free_bytes / 2**30, 2),
        "path": disk.path,
        "threshold_percent": limit,
    }
