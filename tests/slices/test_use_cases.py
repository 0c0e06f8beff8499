"""Use cases driven with a fake unit of work: what they write, emit and defer to after commit."""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError

from src.core.identity import Principal
from src.core.security import PasswordHasher
from src.slices.content.commands import CreateContent, CreateContentCommand
from src.slices.content.events import ContentCreated, ContentPublished
from src.slices.signup.commands import SignUp, SignUpCommand
from src.slices.signup.errors import EmailTaken
from src.slices.signup.events import UserSignedUp
from src.slices.users.commands import PromoteAdmin, PromoteAdminCommand
from src.slices.users.errors import UserNotFound
from src.slices.users.events import RoleChanged
from tests.fakes import FakeResult, FakeUnitOfWork, counter


@pytest.fixture(scope="module")
def hasher() -> Any:
    hasher = PasswordHasher(rounds=4, concurrency=1)
    yield hasher
    hasher.close()


def signup(**overrides: Any) -> SignUpCommand:
    values: dict[str, Any] = {"name": "Ada", "email": "ada@example.com", "password": "x" * 10}
    return SignUpCommand(**{**values, **overrides})


async def test_signup_writes_the_user_and_emits_one_event(hasher: PasswordHasher) -> None:
    uow = FakeUnitOfWork()
    outcomes, counts = counter()
    created = await SignUp(uow, hasher, outcomes).execute(signup())  # type: ignore[arg-type]
    assert len(uow.statements) == 1
    assert uow.events == [created]
    assert isinstance(created, UserSignedUp)
    assert created.display_name == "Ada"  # defaults to the name
    assert counts() == {"success": 1}


async def test_signup_refuses_a_known_email_before_hashing(hasher: PasswordHasher) -> None:
    uow = FakeUnitOfWork(reads=[FakeResult([("ada@example.com", None)])])
    outcomes, counts = counter()
    with pytest.raises(EmailTaken):
        await SignUp(uow, hasher, outcomes).execute(signup())  # type: ignore[arg-type]
    assert uow.statements == []
    assert uow.events == []
    assert counts() == {"duplicate": 1}


async def test_signup_turns_a_lost_unique_race_into_email_taken(hasher: PasswordHasher) -> None:
    race = IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed: users.email"))
    uow = FakeUnitOfWork(results=[race])
    outcomes, counts = counter()
    with pytest.raises(EmailTaken):
        await SignUp(uow, hasher, outcomes).execute(signup())  # type: ignore[arg-type]
    assert uow.events == []
    assert counts() == {"duplicate": 1}


async def test_create_content_invalidates_the_lists_only_after_the_commit() -> None:
    author = SimpleNamespace(id=uuid.uuid4(), name="Ada", display_name="Ada L.")
    uow = FakeUnitOfWork(results=[FakeResult([author])])
    invalidated: list[tuple[str, ...]] = []

    class Cache:
        async def invalidate(self, *keys: str, generations: tuple[str, ...] = ()) -> None:
            invalidated.append(generations)

    command = CreateContentCommand(
        Principal(author.id, uuid.uuid4(), "creator"), "A title", "Some body text"
    )
    item = await CreateContent(uow, Cache()).execute(command)  # type: ignore[arg-type]
    assert [type(e) for e in uow.events] == [ContentCreated, ContentPublished]
    assert item.author_display_name == "Ada L."
    assert invalidated == []  # nothing before the commit
    await uow.committed()
    assert invalidated == [("content:list:generation",)]


async def test_promote_admin_of_an_unknown_email_changes_nothing() -> None:
    uow = FakeUnitOfWork(results=[FakeResult([])])
    with pytest.raises(UserNotFound):
        await PromoteAdmin(uow).execute(PromoteAdminCommand("nobody@example.com"))  # type: ignore[arg-type]
    assert len(uow.statements) == 1
    assert uow.events == []


async def test_promote_admin_emits_the_role_change_for_the_projector() -> None:
    user_id = uuid.uuid4()
    uow = FakeUnitOfWork(results=[FakeResult([(user_id,)])])
    await PromoteAdmin(uow).execute(PromoteAdminCommand("Ada@Example.com"))  # type: ignore[arg-type]
    assert [(type(e), e.user_id, e.role) for e in uow.events] == [(RoleChanged, user_id, "admin")]  # type: ignore[attr-defined]
