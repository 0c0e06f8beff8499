"""The publishing rules, as pure functions: slugs, tags, statuses and search terms.

Used by the HTTP schemas (so a bad value is a 422 naming the field before anything runs) and
by the commands themselves (so every caller — the API, the CLI, another slice's use case —
gets the same normalization).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Literal

Status = Literal["draft", "published"]
DRAFT: Status = "draft"
PUBLISHED: Status = "published"

SLUG_MAX_LENGTH = 80
SLUG_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
UNTITLED = "untitled"

MAX_TAGS = 10
TAG_MAX_LENGTH = 30

SEARCH_MAX_LENGTH = 200

# Latin letters that Unicode does not decompose into a base letter and a combining mark.
_TRANSLITERATIONS = str.maketrans(
    {"æ": "ae", "ø": "o", "œ": "oe", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "ı": "i"}
)
_SLUG_WORD = re.compile(r"[a-z0-9]+")
_WHITESPACE = re.compile(r"\s+")
_TAG = re.compile(r"(?:[^\W_]|-){1,30}")  # letters and digits of any script, and '-'
# What both full-text engines treat as one word: a run of letters and digits.
_SEARCH_WORD = re.compile(r"[^\W_]+")


def slug_base(title: str) -> str:
    """The slug a title asks for: lower-case ASCII words joined by '-', at most 80 characters.

    Accents are dropped (compatibility decomposition, then the combining marks go), so
    "Crème Brûlée" becomes `creme-brulee`; what has no ASCII form at all is left out, and a
    title with nothing left is `untitled`. A long title is cut at a word boundary.
    """
    text = unicodedata.normalize("NFKD", title.casefold())
    text = "".join(char for char in text if not unicodedata.combining(char))
    words = _SLUG_WORD.findall(text.translate(_TRANSLITERATIONS))
    slug = ""
    for word in words:
        candidate = f"{slug}-{word}" if slug else word
        if len(candidate) > SLUG_MAX_LENGTH:
            slug = slug or word[:SLUG_MAX_LENGTH]
            break
        slug = candidate
    return slug or UNTITLED


def numbered_slug(base: str, number: int) -> str:
    """`base` itself for the first item, then `base-2`, `base-3`, … (still at most 80)."""
    if number <= 1:
        return base
    suffix = f"-{number}"
    return base[: SLUG_MAX_LENGTH - len(suffix)].rstrip("-") + suffix


def normalize_tag(raw: str) -> str:
    """Trimmed, lower-cased, inner whitespace as '-'; ValueError unless then 1-30 letters,
    digits or '-'."""
    tag = _WHITESPACE.sub("-", unicodedata.normalize("NFC", raw).strip().lower())
    if not _TAG.fullmatch(tag):
        raise ValueError(
            f"each tag must be 1-{TAG_MAX_LENGTH} letters, digits or '-' once trimmed and "
            "lower-cased (inner spaces become '-')"
        )
    return tag


def normalize_tags(raw: Iterable[str]) -> tuple[str, ...]:
    """Each tag normalized, duplicates merged, in alphabetical order; ValueError when a tag
    is invalid or there are more than 10."""
    given = list(raw)
    if len(given) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags")
    return tuple(sorted({normalize_tag(tag) for tag in given}))


def search_terms(query: str) -> tuple[str, ...]:
    """The words of a search, lower-cased, each once, in the order given.

    Only runs of letters and digits survive: quotes, operators, wildcards and brackets are
    separators here, so no query syntax of either engine can ever be reached from outside.
    Lower-casing (not Unicode case folding, which turns "ß" into "ss") is what both engines
    do to the indexed text, so the words still match it; it also lets "Python" and "python"
    share one cached page.
    """
    words = _SEARCH_WORD.findall(unicodedata.normalize("NFKC", query).lower())
    return tuple(dict.fromkeys(words))
