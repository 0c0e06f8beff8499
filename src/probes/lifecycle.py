"""Process lifecycle shared by the server and the readiness probe, and the SIGTERM drain.

Kubernetes sends SIGTERM and, at about the same time, starts removing the pod from its
Service; until every node has noticed, new requests still arrive. So on SIGTERM the process
first *drains*: `/ready` answers 503 at once while requests are still served for
`SHUTDOWN_DRAIN_SECONDS`; only then is uvicorn's own SIGTERM handling run, which stops
accepting connections, lets in-flight requests finish, runs the lifespan shutdown (pools
closed, spans flushed) and exits. SIGINT (Ctrl+C) is left alone: it stops at once.
"""

from __future__ import annotations

import asyncio
import signal
import time
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from loguru import logger


@dataclass
class Lifecycle:
    """`draining` turns true the moment the process receives SIGTERM; `/ready` then says 503."""

    started_at: float = field(default_factory=time.monotonic)
    draining: bool = False

    def uptime(self) -> float:
        return time.monotonic() - self.started_at


process_lifecycle = Lifecycle()


def install_sigterm_drain(lifecycle: Lifecycle, drain_seconds: float) -> None:
    """Wrap the server's SIGTERM handler (installed by uvicorn before the lifespan starts)."""
    server_handler: Any = signal.getsignal(signal.SIGTERM)
    if not callable(server_handler) or drain_seconds <= 0:
        return
    loop = asyncio.get_running_loop()

    def on_sigterm(sig: int, frame: FrameType | None) -> None:
        if lifecycle.draining:  # a second SIGTERM: stop now
            server_handler(sig, frame)
            return
        lifecycle.draining = True
        # Not logged here: a signal handler may interrupt a log call in progress, and the
        # logger refuses re-entry (an error and a traceback instead of the line).
        loop.call_soon_threadsafe(
            logger.info, "SIGTERM: draining for {}s before shutdown", drain_seconds
        )
        loop.call_soon_threadsafe(loop.call_later, drain_seconds, server_handler, sig, frame)

    signal.signal(signal.SIGTERM, on_sigterm)
