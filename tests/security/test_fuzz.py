"""Property-based fuzzing of the whole HTTP contract with schemathesis.

Every operation of the application's own OpenAPI schema gets generated requests — valid ones
and deliberately invalid ones (negative mode), plus the boundary values of the coverage phase —
sent in-process through schemathesis' ASGI transport, on both backends. Each answer must:

* never be a 5xx (`not_a_server_error`);
* carry a status code the schema documents for the operation (`status_code_conformance`);
* carry a documented content type — problem+json for errors (`content_type_conformance`);
* match the documented response schema (`response_schema_conformance`, headers included);
* refuse what the schema says is invalid (`negative_data_rejection`), refuse a protected
  operation without its credentials (`ignored_auth`), and not serve a deleted resource
  (`use_after_free`).

The caller is authenticated most of the time (as the author, as another user, or anonymous), so
the protected routes are reached, and path ids point at a real user or content item every other
time, so PATCH and DELETE touch real rows. The admin operation is called by an admin half the
time, aimed at a user of its own (whom it may demote or deactivate) so the others keep working.

The run is derandomized, so CI sees the same examples every time; explore further with e.g.
`FUZZ_EXAMPLES=500 FUZZ_RANDOM=1 .venv/bin/pytest tests/security/test_fuzz.py`.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    use_after_free,
)

from src.core.db.engines import create_engine
from src.core.db.uow import SqlUnitOfWork, command_transaction
from src.main import build_dispatcher, create_app
from src.settings import Settings
from src.slices.users.commands import PromoteAdmin, PromoteAdminCommand
from tests.conftest import BASE_SETTINGS, RUN_ID, Backend
from tests.helpers import content_body, signup_body

MAX_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "50"))
DERANDOMIZE = not os.environ.get("FUZZ_RANDOM")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
    ignored_auth,
    use_after_free,
]
CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {"mode": "all", "max-examples": MAX_EXAMPLES},
        "phases": {"coverage": {"enabled": True}, "stateful": {"enabled": False}},
    }
)


class FuzzTarget:
    """The application under test, a real author with content, and a second user."""

    def __init__(self, app: FastAPI, client: asgi.ASGIClient) -> None:
        self.app = app
        self.client = client
        self.author = self._user()
        self.stranger = self._user()
        self.admin = self._user(admin=True)
        self.managed = self._user()  # the one the admin operation is aimed at
        self.content_id, self.slug = self._publish()
        self._turn = itertools.count()

    def _user(self, *, admin: bool = False) -> dict[str, Any]:
        body = signup_body()
        created = self.client.post("/api/v1/signup", json=body)
        assert created.status_code == 201, created.text
        if admin:
            self._promote(body["email"])
        login = self.client.post(
            "/api/v1/auth/login", json={"email": body["email"], "password": body["password"]}
        )
        assert login.status_code == 200, login.text
        token = login.json()["access_token"]
        return {"id": created.json()["id"], "headers": {"Authorization": f"Bearer {token}"}}

    def _promote(self, email: str) -> None:
        """As `inkwell promote-admin` does: its own engine, on a loop of its own (the
        application's runs in schemathesis' thread)."""
        asyncio.run(_promote_admin(self.app.state.resources.settings, email))

    def _publish(self) -> tuple[str, str]:
        response = self.client.post(
            "/api/v1/content", json=content_body(tags=["fuzz"]), headers=self.author["headers"]
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"]), str(response.json()["slug"])

    def prepare(self, case: schemathesis.Case) -> dict[str, str]:
        """Aim the case at real rows every other time; the headers to send it with."""
        turn = next(self._turn)
        if case.path.startswith("/api/v1/admin/") and turn % 2 == 0:
            case.path_parameters["user_id"] = self.managed["id"]
            return dict(self.admin["headers"])
        if turn % 2 == 0:
            if "content_id" in case.path_parameters:
                case.path_parameters["content_id"] = self.content_id
            if "slug" in case.path_parameters:
                case.path_parameters["slug"] = self.slug
            if "user_id" in case.path_parameters:
                case.path_parameters["user_id"] = self.author["id"]
        identity = turn % 5
        if identity == 4:
            return {}  # anonymous
        if identity == 3:
            return dict(self.stranger["headers"])  # someone else's content: 403
        return dict(self.author["headers"])

    def after(self, case: schemathesis.Case, status: int) -> None:
        if case.method.upper() == "DELETE" and status == 204:
            deleted = case.path_parameters.get("content_id")
            if deleted == self.content_id:
                self.content_id, self.slug = self._publish()


async def _promote_admin(settings: Settings, email: str) -> None:
    engine = create_engine(settings.database_url, settings, "write")
    try:
        async with command_transaction(SqlUnitOfWork(engine, build_dispatcher())) as uow:
            await PromoteAdmin(uow).execute(PromoteAdminCommand(email))
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def fuzz_target(backend: Backend) -> Iterator[FuzzTarget]:
    app = create_app(backend.settings(redis_key_prefix=f"inkwell-test-{RUN_ID}:fuzz:"))
    # Entering the client runs the lifespan on schemathesis' own event-loop thread, where every
    # request of the run is then served.
    with asgi.get_client(app) as client:
        try:
            yield FuzzTarget(app, client)
        finally:
            asgi.shutdown_lifespans()


# The schema does not depend on the backend: it is read from an application that never starts.
# Requests go to the backend's running application through `session=`.
# Read without running its lifespan: a started application would run its event runner on a
# database nobody migrated.
_schema_app = create_app(Settings.model_validate(BASE_SETTINGS))
schema = schemathesis.openapi.from_dict(_schema_app.openapi(), config=CONFIG)
schema.app = _schema_app


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=DERANDOMIZE,
    database=None,
)
def test_every_operation_keeps_the_contract(
    case: schemathesis.Case, fuzz_target: FuzzTarget
) -> None:
    headers = fuzz_target.prepare(case)
    response = case.call_and_validate(session=fuzz_target.client, headers=headers, checks=CHECKS)
    fuzz_target.after(case, response.status_code)


def test_the_fuzzed_schema_has_every_route() -> None:
    """The fuzz run above reaches every route of the application: none is left out of the
    schema it is generated from."""
    app = create_app(Settings.model_validate(BASE_SETTINGS))
    routes = {
        (method, route.path)
        for route in iter_route_contexts(app.routes)
        if route.include_in_schema
        for method in route.methods
    }
    operations = {
        (result.ok().method.upper(), result.ok().path) for result in schema.get_all_operations()
    }
    assert operations == routes
    assert len(operations) == 34
