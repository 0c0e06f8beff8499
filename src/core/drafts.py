"""The port through which another slice creates a draft with the content slice's own command.

A slice may not import another slice's commands, yet an AI draft must be created exactly as
`POST /api/v1/content` creates one (slug, tags, events, projections, cache invalidation). So
the content slice implements this protocol (`src/slices/content/drafts.py`) and `src/main.py`
puts it in `Resources.create_draft`; the caller hands it the unit of work of its own command,
so the draft commits with the caller's other writes (the token charge) or not at all.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from src.core.db.uow import UnitOfWork
from src.core.identity import Principal


@dataclass(frozen=True, slots=True)
class NewDraft:
    actor: Principal
    title: str
    body: str
    tags: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class CreatedDraft:
    """The new item's id and its `Content` document (the JSON `GET /api/v1/content/{id}`
    answers for it)."""

    id: uuid.UUID
    document: bytes


class DraftWriter(Protocol):
    def normalize_tags(self, tags: Sequence[str]) -> tuple[str, ...]:
        """The tags as the content slice stores them; `ValidationFailed` (422, pointer
        `/tags`) for a tag it refuses, so a caller can check them before costly work."""
        ...

    async def create(self, uow: UnitOfWork, draft: NewDraft) -> CreatedDraft:
        """A draft by `draft.actor`, created by the content slice's own `CreateContent`."""
        ...
