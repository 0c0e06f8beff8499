"""The process's runtime: the slices' `Resources` plus what the layers around them use.

Created in the application's lifespan (`src/main.py`) and kept on `app.state.runtime`; the
middleware and the probes reach it from the ASGI scope with `runtime_of(scope)`. Slices never
see it (they get `src.core.resources.Resources`), which keeps `core` free of any middleware or
observability import.
"""

from __future__ import annotations

from dataclasses import dataclass

from limits.aio.strategies import RateLimiter
from starlette.types import Scope

from src.core.resources import Resources
from src.middleware.idempotency.store import IdempotencyStore
from src.middleware.rate_counter import RateCounter
from src.observability.metrics import Metrics
from src.probes.lifecycle import Lifecycle


@dataclass
class Runtime:
    resources: Resources
    metrics: Metrics
    rate_limiter: RateLimiter | None  # the auth policy's exact check, with Redis
    rate_counter: RateCounter
    idempotency: IdempotencyStore
    lifecycle: Lifecycle


def runtime_of(scope: Scope) -> Runtime:
    runtime: Runtime = scope["app"].state.runtime
    return runtime
