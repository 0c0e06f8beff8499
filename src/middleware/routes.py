"""What the router will do with a request, known before it runs (for the layers in front).

* `route_template(scope)`: the route template — never the raw path — for metric labels and
  access lines, also for answers given before routing (a 429, an idempotent replay, a 413).
* `reaches_api_operation(scope)`: whether a request reaches an API operation (its path and
  method match one under `/api/`); a 404 or 405 has nothing to commit, and nothing an
  Idempotency-Key may store.
* `allowed_methods(scope)`: every method the request's path answers (a 405's `Allow`), HEAD
  included wherever GET is.

The table is built from the application's routes on first use, and again if routes are added.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fastapi.routing import iter_route_contexts
from starlette.routing import compile_path
from starlette.types import Scope

_TABLE = "inkwell_route_table"


@dataclass(frozen=True, slots=True)
class _Route:
    pattern: re.Pattern[str]
    template: str
    methods: frozenset[str]


def _table(scope: Scope) -> tuple[_Route, ...]:
    app = scope["app"]
    routes = app.routes
    built: tuple[int, tuple[_Route, ...]] | None = getattr(app.state, _TABLE, None)
    if built is not None and built[0] == len(routes):
        return built[1]
    table = tuple(
        _Route(compile_path(path)[0], path, frozenset(context.methods or ()))
        for context in iter_route_contexts(routes)
        if isinstance(path := getattr(context, "path", None), str)
    )
    setattr(app.state, _TABLE, (len(routes), table))
    return table


def route_template(scope: Scope) -> str:
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str):
        return path
    if scope.get("app") is None:
        return "unmatched"
    for route in _table(scope):
        if route.pattern.match(scope["path"]):
            return route.template
    return "unmatched"


def reaches_api_operation(scope: Scope) -> bool:
    path = scope["path"]
    if not path.startswith("/api/") or scope.get("app") is None:
        return False
    method = scope["method"]
    return any(
        method in route.methods and route.pattern.match(path) is not None for route in _table(scope)
    )


def allowed_methods(scope: Scope) -> frozenset[str]:
    if scope.get("app") is None:
        return frozenset()
    path = scope["path"]
    methods = {
        method
        for route in _table(scope)
        if route.pattern.match(path) is not None
        for method in route.methods
    }
    if "GET" in methods:
        methods.add("HEAD")
    return frozenset(methods)
