"""`inkwell-offline`: a deterministic provider built from Inkwell's own published content.

It needs no network and no model, so AI features work anywhere (development, tests, an
air-gapped install), and it says what it is: its `model` is `inkwell-offline`. It answers
from what Inkwell has published: the keywords of the caller's last message are looked up
with the content slice's full-text search (injected at wiring as `search`, since `core`
imports no slice), and the answer names its sources by title and slug.

* Given the draft system prompt, it writes a draft in the shape `prompts.parse_draft` reads:
  `# Title`, then an outline grounded in the matching items, then the sources.
* Otherwise (chat), a short reply naming what Inkwell holds on the subject.

The same messages always give the same answer (for the same published content). Usage is
the text's length / 4 (prompt: every message; completion: the answer).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from src.core.ai.port import ChatMessage, Completion, estimate_prompt_tokens, estimate_tokens
from src.core.ai.prompts import DRAFT_SYSTEM_PROMPT, title_from_prompt

OFFLINE_MODEL = "inkwell-offline"


@dataclass(frozen=True, slots=True)
class Source:
    """A published item an answer is grounded in."""

    title: str
    slug: str
    excerpt: str


# Published items matching every one of the words, best first, at most `limit`.
Search = Callable[[tuple[str, ...], int], Awaitable[Sequence[Source]]]

_WORD = re.compile(r"[^\W_]+")
_STOPWORDS_TEXT = """a about above after again all also an and any are as at be because been
before being below between both but by can could did do does doing down during each few for
from further had has have having he her here hers him his how i if in into is it its itself
just me more most my no nor not now of off on once only or other our out over own please same
she should so some such than that the their them then there these they this those through to
too under until up very was we were what when where which while who whom why will with would
you your write draft article post blog tell explain give make"""
_STOPWORDS = frozenset(_STOPWORDS_TEXT.split())
_MAX_KEYWORDS = 5
_MAX_SOURCES = 5


def keywords(text: str) -> tuple[str, ...]:
    """The distinct words of `text` worth searching for, in order of appearance."""
    found: list[str] = []
    for word in _WORD.findall(text.lower()):
        if len(word) >= 3 and word not in _STOPWORDS and word not in found:
            found.append(word)
        if len(found) == _MAX_KEYWORDS:
            break
    return tuple(found)


def _excerpt(text: str, length: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= length else flat[: length - 1].rstrip() + "…"


class OfflineProvider:
    name = "offline"
    model = OFFLINE_MODEL

    def __init__(self, search: Search) -> None:
        self._search = search

    def __repr__(self) -> str:
        return f"OfflineProvider(model={self.model!r})"

    async def complete(self, messages: Sequence[ChatMessage]) -> Completion:
        text = await self._answer(messages)
        return Completion(
            text=text,
            model=self.model,
            prompt_tokens=estimate_prompt_tokens(messages),
            completion_tokens=estimate_tokens(text),
        )

    async def stream(self, messages: Sequence[ChatMessage]) -> AsyncIterator[str | Completion]:
        completion = await self.complete(messages)
        # Word by word, as a model would stream it; the chunks join to the whole text.
        for chunk in re.findall(r"\S+\s*|\s+", completion.text):
            yield chunk
        yield completion

    async def ping(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    async def sources(self, text: str) -> list[Source]:
        """The published items that match `text` best: those matching most of its keywords
        (all of them first), then in the search's own order."""
        words = keywords(text)
        if not words:
            return []
        ranked: dict[str, tuple[int, int, Source]] = {}
        order = 0
        for found in [await self._search(words, _MAX_SOURCES)] + [
            await self._search((word,), _MAX_SOURCES) for word in words
        ]:
            for source in found:
                hits, first, _ = ranked.get(source.slug, (0, order, source))
                ranked[source.slug] = (hits + 1, first, source)
                order += 1
        best = sorted(ranked.values(), key=lambda entry: (-entry[0], entry[1]))
        return [source for _, _, source in best[:_MAX_SOURCES]]

    async def _answer(self, messages: Sequence[ChatMessage]) -> str:
        request = next((m.content for m in reversed(messages) if m.role == "user"), "")
        sources = await self.sources(request)
        drafting = any(m.role == "system" and m.content == DRAFT_SYSTEM_PROMPT for m in messages)
        return _draft(request, sources) if drafting else _reply(request, sources)


def _source_lines(sources: Sequence[Source]) -> list[str]:
    return [f'- "{s.title}" (slug `{s.slug}`, /api/v1/content/slug/{s.slug})' for s in sources]


def _draft(prompt: str, sources: Sequence[Source]) -> str:
    title = title_from_prompt(prompt)
    subject = " ".join(keywords(prompt)) or title.lower()
    lines = [f"# {title}", ""]
    lines.append(
        f"A first draft written offline by {OFFLINE_MODEL} from what Inkwell has published "
        f"on {subject}. Replace each point with your own words."
    )
    lines += ["", "## Outline", "", f"1. Introduction: why {subject} matters to your readers."]
    for number, source in enumerate(sources, start=2):
        lines.append(f'{number}. What "{source.title}" says: {source.excerpt}')
    if not sources:
        lines.append("2. Nothing published on Inkwell matches this yet: start from your notes.")
    lines += [f"{len(sources) + 2}. Conclusion: what the reader should take away.", ""]
    lines.append("## Sources on Inkwell")
    lines.append("")
    lines += _source_lines(sources) or ["- none yet"]
    return "\n".join(lines)


def _reply(message: str, sources: Sequence[Source]) -> str:
    subject = " ".join(keywords(message))
    if not sources:
        about = f" on {subject}" if subject else ""
        return (
            f"I am {OFFLINE_MODEL}, Inkwell's offline assistant: I answer from what Inkwell "
            f"has published, and nothing published matches{about} yet."
        )
    lines = [
        f"I am {OFFLINE_MODEL}, Inkwell's offline assistant. Inkwell has published "
        f"{len(sources)} item(s) on {subject}:",
        "",
    ]
    lines += [f'- "{s.title}" (slug `{s.slug}`): {s.excerpt}' for s in sources]
    return "\n".join(lines)


def excerpt_of(text: str) -> str:
    """The short excerpt a `Source` carries, from an item's body."""
    return _excerpt(text)
