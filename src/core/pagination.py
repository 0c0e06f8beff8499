"""Opaque, tamper-evident keyset cursors.

A cursor names the last row of a page by its sort key `(created_at, id)`. It is base64url JSON
followed by an HMAC, so a client can neither read meaning into it nor forge one that skips
the index; a garbled or forged cursor is a 422 `validation_error` on the `cursor` parameter.

Decoding is strict: only the exact text `encode()` produces is accepted (unpadded base64url, no
stray characters, no other spelling of the same bytes). A lenient decoder would let one page be
asked for under endless spellings; anything keyed by them (a cache) would store a copy for each.
Caches key a page by its decoded position anyway (`position_key`), never by the client's text.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from sqlalchemy import ColumnElement, Select, tuple_

from src.core.errors.types import ValidationFailed

T = TypeVar("T")

_SIGNATURE_BYTES = 12
_MAX_PART_LENGTH = 512
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")


class CursorCodec:
    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"inkwell-cursor:" + secret.encode()).digest()

    def encode(self, created_at: dt.datetime, row_id: uuid.UUID) -> str:
        payload = orjson.dumps([created_at.isoformat(), row_id.hex])
        signature = hmac.new(self._key, payload, hashlib.sha256).digest()[:_SIGNATURE_BYTES]
        return _b64(payload) + "." + _b64(signature)

    def decode(self, cursor: str) -> tuple[dt.datetime, uuid.UUID]:
        try:
            encoded_payload, encoded_signature = cursor.split(".")
            payload = _unb64(encoded_payload)
            signature = _unb64(encoded_signature)
            expected = hmac.new(self._key, payload, hashlib.sha256).digest()[:_SIGNATURE_BYTES]
            if not hmac.compare_digest(signature, expected):
                raise ValueError("signature mismatch")
            created_at, row_id = orjson.loads(payload)
            moment = dt.datetime.fromisoformat(created_at)
            if moment.tzinfo is None:
                raise ValueError("naive timestamp")
            return moment, uuid.UUID(hex=row_id)
        except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError) as error:
            raise ValidationFailed(
                "The pagination cursor is not valid.",
                errors=[{"parameter": "cursor", "detail": "Not a cursor this API issued."}],
            ) from error


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    """The bytes of `text` if it is exactly how `_b64` writes them, else ValueError."""
    if len(text) > _MAX_PART_LENGTH:
        raise ValueError("cursor too long")
    if _BASE64URL.fullmatch(text) is None:
        raise ValueError("not unpadded base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(data) != text:  # e.g. non-zero padding bits: another spelling of the same bytes
        raise ValueError("not the canonical spelling")
    return data


def position_key(position: tuple[object, ...] | None) -> str:
    """A page position (a decoded cursor) as cache-key text: one text per position."""
    if position is None:
        return ""
    return ":".join(_key_part(part) for part in position)


def _key_part(part: object) -> str:
    if isinstance(part, dt.datetime):
        return part.astimezone(dt.UTC).isoformat()
    if isinstance(part, uuid.UUID):
        return part.hex
    return str(part)


@dataclass(frozen=True, slots=True)
class Keyset:
    """Newest-first keyset paging over `(created_at, id)`, backed by an index on both."""

    created_at: ColumnElement[Any]
    id: ColumnElement[Any]

    def page(
        self, query: Select[Any], after: tuple[dt.datetime, uuid.UUID] | None, limit: int
    ) -> Select[Any]:
        """`query` ordered newest first, after the cursor's position, one row beyond `limit`
        (which tells whether there is a next page)."""
        query = query.order_by(self.created_at.desc(), self.id.desc())
        if after is not None:
            query = query.where(tuple_(self.created_at, self.id) < after)
        return query.limit(limit + 1)


def split_page(
    rows: Sequence[T], limit: int, codec: CursorCodec, position: Any = None
) -> tuple[Sequence[T], str | None]:
    """The page's rows and the cursor of the next page (None on the last one).

    `position(row)` gives a row's `(created_at, id)`; by default its attributes of those names.
    """
    if len(rows) <= limit:
        return rows, None
    last: Any = rows[limit - 1]
    created_at, row_id = position(last) if position else (last.created_at, last.id)
    return rows[:limit], codec.encode(created_at, row_id)
