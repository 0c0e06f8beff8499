"""The content slice's implementation of `src.core.drafts.DraftWriter`: a draft created by
`CreateContent` itself, for the slices that write drafts (AI drafts); wired in `src/main.py`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from src.core.cache.policy import Cache
from src.core.db.uow import UnitOfWork
from src.core.drafts import CreatedDraft, NewDraft
from src.core.errors.types import ValidationFailed
from src.slices.content.commands import CreateContent, CreateContentCommand
from src.slices.content.rules import DRAFT, normalize_tags
from src.slices.content.schemas import Content


@dataclass(frozen=True, slots=True)
class ContentDraftWriter:
    cache: Cache

    def normalize_tags(self, tags: Sequence[str]) -> tuple[str, ...]:
        try:
            return normalize_tags(tags)
        except ValueError as error:
            raise ValidationFailed(errors=[{"pointer": "/tags", "detail": str(error)}]) from error

    async def create(self, uow: UnitOfWork, draft: NewDraft) -> CreatedDraft:
        command = CreateContentCommand(
            draft.actor, draft.title, draft.body, tags=draft.tags, status=DRAFT
        )
        item = await CreateContent(uow, self.cache).execute(command)
        return CreatedDraft(id=item.id, document=Content.of(item).model_dump_json().encode())
