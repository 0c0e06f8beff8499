"""`CreateAIDraft`: a draft whose title and body the AI provider wrote.

1. Creators and admins only (403 before anything is spent), and the tags checked as the
   content slice checks them (422 before the provider is paid for).
2. The token budget admits the call (429 `ai_quota_exceeded`); no database connection of the
   command is open yet (its unit of work opens at the first statement).
3. The provider gets the draft system prompt and the caller's prompt; any failure is 503
   `ai_unavailable`, and nothing is stored (no draft, no charge).
4. The answer is parsed (`src.core.ai.prompts.parse_draft`: `# Title`, then the body).
5. In the command's one transaction: the tokens are charged, then the draft is created by the
   content slice's own `CreateContent` (through `Resources.create_draft`), so slug, tags,
   events, projections and cache invalidation are exactly those of `POST /api/v1/content`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from opentelemetry import trace

from src.core.ai.gateway import AIGateway
from src.core.ai.port import AIUnavailable, ChatMessage
from src.core.ai.prompts import DRAFT_SYSTEM_PROMPT, parse_draft
from src.core.db.uow import UnitOfWork
from src.core.drafts import CreatedDraft, DraftWriter, NewDraft
from src.core.errors.types import Forbidden
from src.core.identity import Principal

tracer = trace.get_tracer(__name__)


@dataclass(frozen=True, slots=True)
class CreateAIDraftCommand:
    actor: Principal
    prompt: str
    tags: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class CreateAIDraft:
    uow: UnitOfWork
    ai: AIGateway
    drafts: DraftWriter

    async def execute(self, command: CreateAIDraftCommand) -> CreatedDraft:
        with tracer.start_as_current_span("ai.create_draft") as span:
            actor = command.actor
            span.set_attribute("user.id", str(actor.user_id))
            if not actor.may_publish:
                raise Forbidden("Viewers may not write AI drafts.")
            tags = self.drafts.normalize_tags(command.tags)
            messages = (
                ChatMessage("system", DRAFT_SYSTEM_PROMPT),
                ChatMessage("user", command.prompt),
            )
            async with self.ai.call(actor.user_id, "draft") as call:
                completion = await call.complete(messages)
                draft = parse_draft(completion.text, command.prompt)
                if draft is None:
                    raise AIUnavailable("the provider's answer holds no draft")
                await call.charge(self.uow)
                created = await self.drafts.create(
                    self.uow, NewDraft(actor, draft.title, draft.body, tags)
                )
            span.set_attribute("content.id", str(created.id))
            span.set_attribute("ai.tokens", call.tokens)
            return created
