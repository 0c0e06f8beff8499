"""The conversations slice's rules, shared by its commands, queries and schemas."""

from __future__ import annotations

import unicodedata

DEFAULT_TITLE = "New conversation"
MAX_TITLE_LENGTH = 200
MAX_MESSAGE_LENGTH = 8000
# A title taken from a conversation's first message: its first line, this long at most.
DERIVED_TITLE_LENGTH = 80


def shown_title(stored: str | None) -> str:
    """The title a conversation answers with (`DEFAULT_TITLE` while it has none)."""
    return stored if stored is not None else DEFAULT_TITLE


def title_from(message: str) -> str:
    """A title from a conversation's first message: its first non-blank line, trimmed to
    `DERIVED_TITLE_LENGTH` characters at a word boundary when there is one (an ellipsis
    marks the cut). A message may hold what a one-line title may not (tabs, invisible format
    characters): whitespace runs become one space and format characters are dropped."""
    line = next((part for part in message.splitlines() if part.strip()), "")
    line = " ".join("".join(c for c in line if unicodedata.category(c) != "Cf").split())
    if not line:
        return DEFAULT_TITLE
    if len(line) <= DERIVED_TITLE_LENGTH:
        return line
    cut = line[: DERIVED_TITLE_LENGTH - 1]
    if " " in cut[DERIVED_TITLE_LENGTH // 2 :]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip() + "…"
