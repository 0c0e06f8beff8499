"""Hot reads (pure ASGI): the few hottest reads answered before the framework routes them.

A hot read's answer is bytes it already has — a cache entry, or a document one prepared
statement returns. Routing it through the framework — route matching, dependency resolution,
the endpoint, a `Response` object and its middleware — costs several times more than getting
those bytes (measured: over half of a cached item read's server CPU). So, for the few reads
that are hot, the slice that owns them offers a `HotRead`: given the path's parameters and
the query string, the body of a 200 answer, or None; or it raises the `AppError` the route's
use case raises (an unknown user's 404), answered as the route's exception handler would.
This layer, behind the rate limiter and in front of the framework, answers at once and hands
everything else — a cache miss, a query it does not know, a request with credentials, HEAD
excepted — to the framework's route, which is the one implementation of the read (and of its
OpenAPI description): a hot read only ever answers what that route would answer.

What stays the same for an answer given here: the edge's ids, security headers, access line
and metrics (the route template is set in the scope, as the router would), the rate limit and
its headers, the server span (with a `hot_read` child span instead of the use case's); for a
cached read also `Cache-Status: inkwell; hit` and `cache_requests_total`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from opentelemetry import trace
from starlette.types import ASGIApp, Receive, Scope, Send

from src.core.errors.problems import send_error
from src.core.errors.types import AppError
from src.core.hot_reads import HotRead
from src.core.resources import Resources
from src.core.spans import child_span

tracer = trace.get_tracer(__name__)

_JSON = (b"content-type", b"application/json")
_CACHE_HIT = (b"cache-status", b"inkwell; hit")


@dataclass(frozen=True, slots=True)
class _RouteTemplate:
    """What the layers in front read of the matched route (`routes.route_template`): its
    template, as the router would have put it in the scope."""

    path: str


@dataclass(frozen=True, slots=True)
class _Compiled:
    pattern: re.Pattern[str]
    read: HotRead
    route: _RouteTemplate  # built once, put in the scope of every answer
    headers: tuple[tuple[bytes, bytes], ...]


def _compile(template: str) -> re.Pattern[str]:
    """`/api/v1/content/{content_id}` → one path segment per parameter, nothing else."""
    parts = re.split(r"\{(\w+)\}", template)
    pattern = "".join(
        re.escape(part) if i % 2 == 0 else f"(?P<{part}>[^/]+)" for i, part in enumerate(parts)
    )
    return re.compile(f"{pattern}$")


class HotReads:
    def __init__(self, app: ASGIApp, reads: Sequence[HotRead]) -> None:
        self.app = app
        compiled = [
            _Compiled(
                _compile(read.template),
                read,
                _RouteTemplate(read.template),
                (_JSON, _CACHE_HIT) if read.cached else (_JSON,),
            )
            for read in reads
        ]
        self._exact = {c.read.template: c for c in compiled if "{" not in c.read.template}
        self._patterns = tuple(c for c in compiled if "{" in c.read.template)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or any(name == b"authorization" for name, _ in scope["headers"])
        ):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        params: Mapping[str, str] = {}
        found = self._exact.get(path)
        if found is None:
            for candidate in self._patterns:
                match = candidate.pattern.match(path)
                if match is not None:
                    found, params = candidate, match.groupdict()
                    break
        if found is None:
            await self.app(scope, receive, send)
            return
        resources: Resources = scope["app"].state.resources
        # Its own span: the cache command or statement it sends belongs under something in
        # the trace, and when it does not answer the route's use case span follows it.
        try:
            with child_span(tracer, "hot_read") as span:
                span.set_attribute("http.route", found.read.template)
                body = await found.read.answer(resources, params, scope.get("query_string", b""))
                if found.read.cached:
                    span.set_attribute("cache.status", "miss" if body is None else "hit")
        except AppError as error:  # the route's own error (a profile's 404): the same problem
            scope["route"] = found.route
            await send_error(send, scope, error)
            return
        if body is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = found.route  # the template for the access line and metrics
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*found.headers, (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
