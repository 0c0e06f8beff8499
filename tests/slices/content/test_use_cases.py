"""Content use cases driven with a fake unit of work: slugs claimed past a lost race, the
events a change emits, and rules enforced by the commands themselves (for every caller)."""

from __future__ import annotations

import datetime as dt
import uuid
from types import SimpleNamespace
from typing import Any

import pytest

from src.core.errors.types import ValidationFailed
from src.core.identity import Principal
from src.slices.content.commands import (
    CreateContent,
    CreateContentCommand,
    UpdateContent,
    UpdateContentCommand,
)
from src.slices.content.events import ContentCreated, ContentPublished, ContentUpdated
from tests.fakes import FakeResult, FakeUnitOfWork


def _creator(user_id: uuid.UUID) -> Principal:
    return Principal(user_id, uuid.uuid4(), "creator")


class _Cache:
    async def invalidate(self, *keys: str, generations: tuple[str, ...] = ()) -> None:
        pass


def _author() -> SimpleNamespace:
    return SimpleNamespace(id=uuid.uuid4(), name="Ada", display_name="Ada L.", role="creator")


async def test_a_slug_lost_to_a_concurrent_create_moves_to_the_next_number() -> None:
    author = _author()
    uow = FakeUnitOfWork(
        results=[
            FakeResult([author]),  # the author
            FakeResult([(4,)]),  # the highest number of this title so far
            FakeResult(rowcount=0),  # `-5` was taken meanwhile
            FakeResult(rowcount=0),  # and `-6`
            FakeResult(rowcount=1),
        ]
    )
    command = CreateContentCommand(_creator(author.id), "Breaking News", "Some body text")
    item = await CreateContent(uow, _Cache()).execute(command)  # type: ignore[arg-type]
    assert item.slug == "breaking-news-7"
    assert len(uow.statements) == 5


async def test_a_draft_is_created_without_a_publication_event() -> None:
    author = _author()
    uow = FakeUnitOfWork(results=[FakeResult([author])])
    command = CreateContentCommand(
        _creator(author.id),
        "Later",
        "Some body text",
        tags=[" Two Words", "b"],
        status="draft",
    )
    item = await CreateContent(uow, _Cache()).execute(command)  # type: ignore[arg-type]
    assert [type(e) for e in uow.events] == [ContentCreated]
    assert (item.status, item.published_at, item.tags) == ("draft", None, ("b", "two-words"))


@pytest.mark.parametrize(
    ("changes", "pointer"),
    [({"tags": ["no_underscores"]}, "/tags"), ({"status": "archived"}, "/status")],
)
async def test_the_command_refuses_what_the_schema_would(
    changes: dict[str, Any], pointer: str
) -> None:
    """Another slice's use case (AI drafts) builds the command without the HTTP schema."""
    uow = FakeUnitOfWork()
    command = CreateContentCommand(_creator(uuid.uuid4()), "Title", "Some body text", **changes)
    with pytest.raises(ValidationFailed) as refused:
        await CreateContent(uow, _Cache()).execute(command)  # type: ignore[arg-type]
    assert refused.value.extra["errors"][0]["pointer"] == pointer
    assert uow.statements == []


def _stored(author: SimpleNamespace, **overrides: Any) -> SimpleNamespace:
    created = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "author_id": author.id,
        "slug": "later",
        "title": "Later",
        "body": "Some body text",
        "image": None,
        "status": "draft",
        "published_at": None,
        "created_at": created,
        "updated_at": created,
    }
    return SimpleNamespace(**{**values, **overrides})


def _update_uow(author: SimpleNamespace, row: SimpleNamespace) -> FakeUnitOfWork:
    names = SimpleNamespace(name=author.name, display_name=author.display_name)
    return FakeUnitOfWork(results=[FakeResult([row]), FakeResult([names]), FakeResult([])])


async def test_publishing_a_draft_emits_the_publication_once_with_its_first_time() -> None:
    author = _author()
    row = _stored(author)
    uow = _update_uow(author, row)
    command = UpdateContentCommand(_creator(author.id), row.id, status="published")
    item = await UpdateContent(uow, _Cache()).execute(command)  # type: ignore[arg-type]
    assert [type(e) for e in uow.events] == [ContentUpdated, ContentPublished]
    assert item.published_at == item.updated_at
    assert uow.events[0].previous.status == "draft"  # type: ignore[attr-defined]


async def test_republishing_keeps_the_first_publication_time() -> None:
    author = _author()
    first = dt.datetime(2026, 1, 3, tzinfo=dt.UTC)
    row = _stored(author, published_at=first)  # published once, then unpublished
    uow = _update_uow(author, row)
    command = UpdateContentCommand(_creator(author.id), row.id, status="published")
    item = await UpdateContent(uow, _Cache()).execute(command)  # type: ignore[arg-type]
    assert item.published_at == first
    assert [type(e) for e in uow.events] == [ContentUpdated, ContentPublished]


async def test_editing_a_published_item_publishes_nothing_new() -> None:
    author = _author()
    row = _stored(author, status="published", published_at=dt.datetime(2026, 1, 3, tzinfo=dt.UTC))
    uow = _update_uow(author, row)
    command = UpdateContentCommand(_creator(author.id), row.id, title="Edited")
    await UpdateContent(uow, _Cache()).execute(command)  # type: ignore[arg-type]
    assert [type(e) for e in uow.events] == [ContentUpdated]
