"""Reusable input types: text that is safe to store, index and show.

Every free-text field of the API goes through one of these, so no slice can forget to refuse
NUL bytes (PostgreSQL cannot store them), lone surrogates (not encodable as UTF-8), control
characters, or bidirectional-override characters that make a name display as something else.

One-line fields (names, titles, places) also refuse what cannot be seen or breaks a line:
every *format* character (Unicode category Cf: zero-width space U+200B, word joiner U+2060,
byte order mark U+FEFF, soft hyphen, the Arabic letter mark U+061C and the other bidi marks,
tag characters, …) and the line and paragraph separators (Zl U+2028, Zp U+2029). A name made
of two zero-width spaces and a letter looks like a one-letter name and is not one; a U+2028
starts a new line in whatever displays it. The one exception: the zero-width non-joiner and
joiner (U+200C, U+200D) between two visible characters, where they are part of the text —
Persian and Indic words need the first, emoji sequences (👩‍💻) the second.
Multi-line fields (bodies) keep format characters (a pasted BOM, soft hyphens, emoji) but not
controls, surrogates or bidi overrides, and their minimum length counts visible text only.

Empty optional text (`""`, or only spaces) means "not given" and is stored as null.

E-mail addresses have one normalization (`normalize_email`), used by signup to store them and
by login to look them up, so whatever spelling signed up also logs in.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
import uuid
from typing import Annotated
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, StringConstraints, WithJsonSchema

from src.core.security import BCRYPT_MAX_BYTES

_BIDI_CONTROLS = frozenset(
    "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
)
_JOINERS = frozenset("\u200c\u200d")
_INVISIBLE = frozenset({"Cf", "Zl", "Zp"})
MAX_EMAIL_LENGTH = 320


def _check_text(value: str, *, multiline: bool) -> str:
    last = len(value) - 1
    for index, char in enumerate(value):
        category = unicodedata.category(char)
        if category == "Cs":
            raise ValueError("must be valid Unicode text (no lone surrogates)")
        if category == "Cc" and not (multiline and char in "\n\r\t"):
            raise ValueError("must not contain control characters")
        if char in _BIDI_CONTROLS:
            raise ValueError("must not contain bidirectional control characters")
        if multiline or category not in _INVISIBLE:
            continue
        if category in ("Zl", "Zp"):
            raise ValueError("must be one line (no line or paragraph separators)")
        if char in _JOINERS and 0 < index < last and _visible(value[index - 1], value[index + 1]):
            continue
        raise ValueError("must not contain invisible formatting characters (zero-width, BOM, …)")
    return value


def _visible(*chars: str) -> bool:
    return all(not c.isspace() and unicodedata.category(c) not in _INVISIBLE for c in chars)


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


def _none_if_empty(value: str) -> str | None:
    return value or None


def visible_length(value: str) -> int:
    """The length of `value` without surrounding whitespace and invisible format characters."""
    return len("".join(char for char in value if unicodedata.category(char) != "Cf").strip())


def MinVisible(length: int) -> AfterValidator:
    """At least `length` characters of visible text (whitespace alone is not a body)."""

    def check(value: str) -> str:
        if visible_length(value) < length:
            raise ValueError(f"must contain at least {length} characters besides whitespace")
        return value

    return AfterValidator(check)


SingleLine = AfterValidator(_single_line)
"""Refuses control, format and separator characters, lone surrogates and bidi overrides."""

MultiLine = AfterValidator(_multi_line)
"""Refuses control characters (newlines and tabs are fine), lone surrogates, bidi overrides."""

HasLetter = AfterValidator(_has_letter)

EmptyIsNull = AfterValidator(_none_if_empty)
"""After stripping, an empty string becomes None ("not given")."""


PersonName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    SingleLine,
    HasLetter,
]
OptionalLine100 = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=100), SingleLine, EmptyIsNull
]


# --- e-mail addresses ---------------------------------------------------------------------------


def normalize_email(value: str) -> str:
    """The one stored spelling of an e-mail address; ValueError if `value` is not one.

    Compatibility-normalized (NFKC: a full-width `ＥＸＡＭＰＬＥ` is `EXAMPLE`), checked by
    email-validator (a bare address: no display-name form such as `Ada <ada@example.com>`; the
    domain IDNA-normalized; no deliverability look-up), then lower-cased.
    """
    if len(value) > MAX_EMAIL_LENGTH:
        raise ValueError(f"must be at most {MAX_EMAIL_LENGTH} characters")
    if not is_storable(value):
        raise ValueError("must be valid Unicode text without NUL")
    text = unicodedata.normalize("NFKC", value).strip()
    try:
        address = validate_email(text, check_deliverability=False)
    except EmailNotValidError as error:
        raise ValueError(f"not a valid e-mail address: {error}") from error
    return address.normalized.lower()


def login_email(value: str) -> str | None:
    """`value` normalized as signup stores it, or None when no account can have it."""
    try:
        return normalize_email(value)
    except ValueError:
        return None


EmailAddress = Annotated[
    str,
    AfterValidator(normalize_email),
    WithJsonSchema({"type": "string", "format": "email", "maxLength": MAX_EMAIL_LENGTH}),
]
"""An e-mail address, stored as `normalize_email` spells it."""


# --- URLs -----------------------------------------------------------------------------------------

# RFC 3986 characters, and well-formed percent escapes only: no quotes, angle brackets,
# backslashes, spaces or anything else that a page could mistake for markup.
_URI_CHARACTERS = re.compile(r"(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})+")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST_NAME = re.compile(rf"(?=.{{1,253}}$)(?:{_LABEL}\.)*{_LABEL}\.?")


def _web_url(value: str) -> str | None:
    if not value:
        return None  # an empty optional URL is "no URL"
    if _URI_CHARACTERS.fullmatch(value) is None:
        raise ValueError("must be a URL of RFC 3986 characters (percent-encode anything else)")
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http or https URL")
    if "@" in parts.netloc:
        raise ValueError("must not carry a user name or password")
    try:
        port = parts.port  # ValueError for a port that is not a number in 0-65535
    except ValueError as error:
        raise ValueError("must have a valid port (1-65535)") from error
    if port == 0:
        raise ValueError("must have a valid port (1-65535)")
    host = parts.hostname or ""
    if parts.netloc.split(":")[0].startswith("[") or ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError as error:
            raise ValueError("must have a valid host") from error
    elif _HOST_NAME.fullmatch(host) is None:
        raise ValueError("must have a valid host name")
    return value


WebUrl = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=2048),
    AfterValidator(_web_url),
    # Empty (or blank) is a documented "none", so the schema admits it beside a URI: a client
    # or fuzzer reading the schema must not take `""` for a value the API ought to refuse.
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": 2048,
            "anyOf": [{"format": "uri"}, {"pattern": r"^\s*$"}],
        }
    ),
]
"""An absolute http(s) URL that is safe to put in a page: RFC 3986 characters only, a valid
host and port, no credentials. Empty means none (null)."""
PhoneNumber = Annotated[
    str,
    StringConstraints(strip_whitespace=True, pattern=r"^(\+[0-9]{8,15})?$"),
    SingleLine,
    EmptyIsNull,
]
"""E.164: `+` then 8-15 digits; empty means none (null)."""

NewPassword = Annotated[str, StringConstraints(min_length=8), AfterValidator(_bcrypt_password)]
"""A password being chosen: 8 characters to 72 UTF-8 bytes (what bcrypt reads), no NUL."""


_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def canonical_uuid_text(raw: str) -> str | None:
    """A path id in the standard 8-4-4-4-12 form (either case) as `str(uuid)` would spell it,
    or None. The hot reads take only this spelling and leave every other one (and every
    malformed id) to the route's own parsing, which answers it. A cache key needs the text
    alone: no `UUID` object to build and turn back into text."""
    lowered = raw.lower()
    return lowered if _CANONICAL_UUID.fullmatch(lowered) else None


def canonical_uuid(raw: str) -> uuid.UUID | None:
    """`canonical_uuid_text`, as a `UUID`."""
    text = canonical_uuid_text(raw)
    return uuid.UUID(text) if text is not None else None
