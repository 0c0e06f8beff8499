"""Reusable input types: text that is safe to store, index and show.

Every free-text field of the API goes through one of these, so no slice can forget to refuse
NUL bytes (PostgreSQL cannot store them), lone surrogates (not encodable as UTF-8), control
characters, or bidirectional-override characters that make a name display as something else.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import AfterValidator, StringConstraints

from src.core.security import BCRYPT_MAX_BYTES

_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")


def _check_text(value: str, *, multiline: bool) -> str:
    for char in value:
        category = unicodedata.category(char)
        if category == "Cs":
            raise ValueError("must be valid Unicode text (no lone surrogates)")
        if category == "Cc" and not (multiline and char in "\n\r\t"):
            raise ValueError("must not contain control characters")
        if char in _BIDI_CONTROLS:
            raise ValueError("must not contain bidirectional control characters")
    return value


def is_storable(value: str) -> bool:
    """Whether every database can store `value`: encodable as UTF-8 and free of NUL."""
    return "\x00" not in value and not any(unicodedata.category(char) == "Cs" for char in value)


def _single_line(value: str) -> str:
    return _check_text(value, multiline=False)


def _multi_line(value: str) -> str:
    return _check_text(value, multiline=True)


def _bcrypt_password(value: str) -> str:
    try:
        encoded = value.encode()
    except UnicodeEncodeError as error:
        raise ValueError("must be valid Unicode text") from error
    if len(encoded) > BCRYPT_MAX_BYTES:
        raise ValueError("must be at most 72 bytes when encoded as UTF-8")
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _has_letter(value: str) -> str:
    if not any(char.isalpha() for char in value):
        raise ValueError("must contain at least one letter")
    return value


SingleLine = AfterValidator(_single_line)
"""Refuses control characters, lone surrogates and bidi overrides in one-line text."""

MultiLine = AfterValidator(_multi_line)
"""As `SingleLine`, but newlines and tabs are allowed."""

HasLetter = AfterValidator(_has_letter)


PersonName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    SingleLine,
    HasLetter,
]
OptionalLine100 = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=100), SingleLine
]
PhoneNumber = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^\+[0-9]{8,15}$"), SingleLine
]
"""E.164: `+` then 8-15 digits."""

NewPassword = Annotated[str, StringConstraints(min_length=8), AfterValidator(_bcrypt_password)]
"""A password being chosen: 8 characters to 72 UTF-8 bytes (what bcrypt reads), no NUL."""
