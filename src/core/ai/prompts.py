"""The system prompts Inkwell gives a provider, and how a draft is read back from an answer.

A draft answer is Markdown whose first non-empty line is the title, as a heading (`# Title`);
everything after it is the body. The same parsing applies to every provider (the offline one
writes exactly that shape). An answer without a heading uses its first line as the title; a
title that is too long is cut at a word boundary (200 characters at most), and one that is too
short falls back to the caller's prompt. Characters the content fields refuse (control
characters other than newlines and tabs, bidirectional controls, NUL, lone surrogates) are
dropped, and a body longer than the content limit is cut.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

DRAFT_SYSTEM_PROMPT = (
    "You are Inkwell's writing assistant. Write a first draft of an article for the author's "
    "request. Answer in Markdown: the first line is the title as a level-one heading "
    "('# Title', at most 200 characters), then a blank line, then the body. Write the article "
    "itself, not comments about it."
)

CHAT_SYSTEM_PROMPT = (
    "You are Inkwell's writing assistant. Help the author plan, write and improve their "
    "articles. Answer concisely, in Markdown where it helps."
)

TITLE_MIN, TITLE_MAX = 3, 200
BODY_MIN, BODY_MAX = 10, 50_000

_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s*(.*?)\s*#*\s*$")


@dataclass(frozen=True, slots=True)
class Draft:
    title: str
    body: str


def clean_text(text: str, *, multiline: bool) -> str:
    """`text` without the characters the content fields refuse."""
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if category == "Cs" or char in _BIDI:
            continue
        if category == "Cc" and not (multiline and char in "\n\t"):
            continue
        if not multiline and category in ("Zl", "Zp", "Cf"):
            continue
        kept.append(char)
    return "".join(kept)


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip()


def title_from_prompt(prompt: str) -> str:
    """A title made of the caller's prompt: its first line, capitalised, cut to fit."""
    line = next((line.strip() for line in prompt.splitlines() if line.strip()), "")
    line = clean_text(line, multiline=False).strip().rstrip(".!?:;,")
    title = _cut(line[:1].upper() + line[1:], TITLE_MAX)
    return title if len(title) >= TITLE_MIN else "Untitled draft"


def parse_draft(text: str, prompt: str) -> Draft | None:
    """The title and body of a draft answer, or None when it holds no usable body."""
    text = clean_text(text.replace("\r\n", "\n").replace("\r", "\n"), multiline=True)
    lines = text.strip().split("\n")
    first = lines[0].strip() if lines else ""
    heading = _HEADING.match(first)
    title = heading.group(1) if heading else first
    title = _cut(clean_text(title, multiline=False).strip().strip("*_").strip(), TITLE_MAX)
    body = "\n".join(lines[1:]).strip()
    if len(title) < TITLE_MIN:
        title = title_from_prompt(prompt)
    if len(body) < BODY_MIN:  # a one-line answer: it is the body, under the prompt's title
        body, title = text.strip(), title_from_prompt(prompt)
    if len(body) < BODY_MIN:
        return None
    return Draft(title=title, body=_cut(body, BODY_MAX))
