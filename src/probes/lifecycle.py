"""Process lifecycle shared by the server runner and the readiness probe."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class Lifecycle:
    """`draining` turns true the moment the process receives SIGTERM; `/ready` then says 503."""

    started_at: float = field(default_factory=time.monotonic)
    draining: bool = False

    def uptime(self) -> float:
        return time.monotonic() - self.started_at


process_lifecycle = Lifecycle()
