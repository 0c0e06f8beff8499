"""What a slice offers the hot-read layer (`src/middleware/hot_reads.py`): a `GET` route's
template and a function giving the body of its 200 answer, or None to let the route answer;
it may raise the `AppError` the route's use case raises, answered as the route would."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from src.core.resources import Resources

# (resources, the path's parameters, the raw query string) -> the body, or None.
HotAnswer = Callable[["Resources", Mapping[str, str], bytes], Awaitable[bytes | None]]


@dataclass(frozen=True, slots=True)
class HotRead:
    """A `GET` route template (exactly as the framework's route declares it) and its answer;
    `cached`: the answer comes from the response cache (a hit says so in `Cache-Status`)."""

    template: str
    answer: HotAnswer
    cached: bool = True
