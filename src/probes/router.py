"""`/health` (liveness), `/ready` (readiness) and `/metrics`.

Liveness touches nothing but the process: a database outage must never get pods restarted.
Readiness checks each dependency concurrently with its own short timeout, reads CPU, memory
and disk figures from psutil without sleeping on the event loop, and answers 503 naming the
failing check — and from the moment SIGTERM arrives, so the pod leaves the Service before it
stops. Probe bodies are plain JSON (their `status` is a word), even on 503.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import psutil
from fastapi import APIRouter, Request
from opentelemetry.instrumentation.utils import suppress_instrumentation
from prometheus_client.exposition import choose_encoder
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.responses import JSONResponse, PlainTextResponse, Response

from src import __version__
from src.runtime import Runtime

router = APIRouter(include_in_schema=True, tags=["probes"])

Check = dict[str, Any]


@router.get("/health", summary="Liveness: the process is up (touches no dependency)")
async def health(request: Request) -> JSONResponse:
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


@router.get(
    "/ready",
    summary="Readiness: dependencies reachable, resources within limits, not draining",
    responses={503: {"description": "Not ready", "content": {"application/json": {}}}},
)
async def ready(request: Request) -> JSONResponse:
    runtime: Runtime = request.app.state.runtime
    res = runtime.resources
    settings = res.settings
    timeout = settings.ready_check_timeout_seconds
    redis = res.redis
    with suppress_instrumentation():  # probes are polled every few seconds: no SQL/Redis spans
        database, read_database, redis_check = await asyncio.gather(
            _timed(_ping_database(res.database.write_engine), timeout),
            _timed(_ping_database(res.database.read_engine), timeout),
            _timed(redis.ping(), timeout) if redis is not None else _skipped(),
        )
    checks: dict[str, Check] = {
        "database": database,
        "read_database": read_database,
        "redis": redis_check,
        "cpu": _cpu(),
        "memory": _memory(settings.ready_max_memory_percent),
        "disk": _disk(settings.ready_max_disk_percent),
    }
    draining = runtime.lifecycle.draining
    ok = not draining and all(check["status"] != "fail" for check in checks.values())
    body: dict[str, Any] = {"status": "ready" if ok else "not_ready", "checks": checks}
    if draining:
        body["draining"] = True
    return JSONResponse(body, status_code=200 if ok else 503)


_EXPOSITION = {"schema": {"type": "string"}}


@router.get(
    "/metrics",
    summary="Prometheus metrics (OpenMetrics when asked for)",
    response_class=PlainTextResponse,
    responses={200: {"content": {"application/openmetrics-text": _EXPOSITION}}},
)
async def metrics(request: Request) -> Response:
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


def _memory(limit: float) -> Check:
    memory = psutil.virtual_memory()
    return {
        "status": "ok" if memory.percent <= limit else "fail",
        "used_percent": memory.percent,
        "available_mb": round(memory.available / 2**20),
        "threshold_percent": limit,
    }


def _disk(limit: float, path: str = "/") -> Check:
    usage = psutil.disk_usage(path)
    return {
        "status": "ok" if usage.percent <= limit else "fail",
        "used_percent": usage.percent,
        "free_gb": round(usage.free / 2**30, 2),
        "threshold_percent": limit,
    }
