"""The account use cases driven with a fake unit of work: what each refusal leaves untouched,
and what each change emits for the projectors."""

from __future__ import annotations

import datetime as dt
import uuid
from types import SimpleNamespace
from typing import Any

import pytest

from src.core.errors.types import Forbidden
from src.core.identity import Principal, Role
from src.core.security import PasswordHasher, TokenService
from src.slices.auth.commands import LogOut, LogOutCommand
from src.slices.content.projector import RenameAuthor
from src.slices.users.commands import (
    ChangePassword,
    ChangePasswordCommand,
    UpdateProfile,
    UpdateProfileCommand,
    UpdateUserAsAdmin,
    UpdateUserAsAdminCommand,
)
from src.slices.users.errors import WrongPassword
from src.slices.users.events import ProfileUpdated, RoleChanged, UserDeactivated
from tests.fakes import FakeResult, FakeUnitOfWork

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def principal(role: Role = "creator") -> Principal:
    return Principal(uuid.uuid4(), uuid.uuid4(), role)


def account_row(user_id: uuid.UUID, **overrides: Any) -> Any:
    values: dict[str, Any] = {
        "id": user_id,
        "name": "Ada",
        "email": "ada@example.com",
        "display_name": "Ada",
        "phone_number": None,
        "country": None,
        "state": None,
        "role": "creator",
        "is_active": True,
        "created_at": NOW,
        "content_count": 3,
        "follower_count": 0,
        "following_count": 0,
    }
    values.update(overrides)
    return SimpleNamespace(_mapping=values)


@pytest.mark.parametrize(
    "command",
    [
        UpdateUserAsAdminCommand(principal("creator"), uuid.uuid4(), role="admin"),
        UpdateUserAsAdminCommand(principal("viewer"), uuid.uuid4(), is_active=False),
    ],
    ids=["creator", "viewer"],
)
async def test_a_non_admin_is_refused_before_any_statement(
    command: UpdateUserAsAdminCommand,
) -> None:
    uow = FakeUnitOfWork()
    with pytest.raises(Forbidden):
        await UpdateUserAsAdmin(uow).execute(command)  # type: ignore[arg-type]
    assert uow.statements == []
    assert uow.events == []


@pytest.mark.parametrize(
    "changes", [{"role": "creator"}, {"is_active": False}], ids=["demote", "deactivate"]
)
async def test_an_admin_acting_on_themselves_is_refused_before_any_statement(
    changes: dict[str, Any],
) -> None:
    admin = principal("admin")
    uow = FakeUnitOfWork()
    command = UpdateUserAsAdminCommand(admin, admin.user_id, **changes)
    with pytest.raises(Forbidden):
        await UpdateUserAsAdmin(uow).execute(command)  # type: ignore[arg-type]
    assert uow.statements == []


async def test_deactivation_ends_the_sessions_and_emits_the_events() -> None:
    target = uuid.uuid4()
    uow = FakeUnitOfWork(results=[FakeResult([account_row(target)])])
    command = UpdateUserAsAdminCommand(principal("admin"), target, role="viewer", is_active=False)
    account = await UpdateUserAsAdmin(uow).execute(command)  # type: ignore[arg-type]
    assert (account.role, account.is_active) == ("viewer", False)
    assert [type(event) for event in uow.events] == [RoleChanged, UserDeactivated]
    ended = [s for s in uow.statements if "sessions" in str(s)]
    assert len(ended) == 1
    assert "revoked_at" in str(ended[0])


async def test_a_profile_edit_to_the_same_values_writes_and_emits_nothing() -> None:
    actor = principal()
    uow = FakeUnitOfWork(results=[FakeResult([account_row(actor.user_id)])])
    command = UpdateProfileCommand(actor, {"name": "Ada", "country": None})
    account = await UpdateProfile(uow).execute(command)  # type: ignore[arg-type]
    assert account.name == "Ada"
    assert len(uow.statements) == 1  # the account's own row, read
    assert uow.events == []


@pytest.mark.parametrize(
    ("changes", "renamed"),
    [
        ({"display_name": "Countess"}, True),
        ({"name": "Augusta"}, True),
        ({"country": "Italy", "phone_number": "+390000000000"}, False),
    ],
)
async def test_the_event_says_whether_the_names_changed(
    changes: dict[str, Any], renamed: bool
) -> None:
    actor = principal()
    uow = FakeUnitOfWork(results=[FakeResult([account_row(actor.user_id)])])
    await UpdateProfile(uow).execute(UpdateProfileCommand(actor, changes))  # type: ignore[arg-type]
    [event] = uow.events
    assert isinstance(event, ProfileUpdated)
    assert event.changed == frozenset(changes)
    assert event.renamed is renamed


async def test_an_edit_that_keeps_the_names_touches_no_content_row() -> None:
    class Connection:
        statements: list[Any] = []

        async def execute(self, statement: Any) -> Any:
            self.statements.append(statement)

    event = ProfileUpdated(
        user_id=uuid.uuid4(), name="Ada", display_name="Ada", phone_number=None,
        country="Italy", state=None, updated_at=NOW, changed=frozenset({"country"}),
    )  # fmt: skip
    connection = Connection()
    assert await RenameAuthor(cache=None)(connection, event) is None  # type: ignore[arg-type]
    assert connection.statements == []


async def test_a_wrong_current_password_writes_nothing() -> None:
    hasher = PasswordHasher(rounds=4, concurrency=1)
    try:
        stored = await hasher.hash("the right one")
        uow = FakeUnitOfWork(reads=[FakeResult([(stored,)])])
        command = ChangePasswordCommand(principal(), "a wrong one", "a brand new secret")
        with pytest.raises(WrongPassword):
            await ChangePassword(uow, hasher).execute(command)  # type: ignore[arg-type]
    finally:
        hasher.close()
    assert uow.statements == []
    assert uow.events == []


async def test_logging_out_another_accounts_session_writes_nothing() -> None:
    tokens = TokenService("s" * 40, 600, 600)
    victim_token = tokens.issue(uuid.uuid4(), uuid.uuid4(), "refresh")
    uow = FakeUnitOfWork()
    with pytest.raises(Forbidden):
        await LogOut(uow, tokens).execute(LogOutCommand(victim_token, caller=uuid.uuid4()))  # type: ignore[arg-type]
    assert uow.statements == []
