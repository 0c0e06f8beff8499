"""Opaque, tamper-evident keyset cursors.

A cursor names the last row of a page by its position in the list's order: its sort key, e.g.
`(created_at, id)` for newest-first lists, or `(rank, created_at, id)` for a search ordered by
relevance. It is base64url JSON followed by an HMAC, so a client can neither read meaning into
it nor forge one that skips the index; a garbled or forged cursor, or one whose position has
another shape than the list expects, is a 422 `validation_error` on the `cursor` parameter.

A position is a sequence of values of the types in `PositionShape`: timestamps (UTC-aware,
ISO 8601 in the payload), UUIDs (hex) and numbers (JSON numbers; a float survives the round
trip exactly, so a rank compares equal to the one it was read from).

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
import math
import re
import uuid
from collections.abc import Sequence
from typing import Any, TypeVar

import orjson
from sqlalchemy import ColumnElement, Select, tuple_

from src.core.errors.types import ValidationFailed

T = TypeVar("T")

_SIGNATURE_BYTES = 12
_MAX_PART_LENGTH = 512
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")

PositionValue = dt.datetime | uuid.UUID | float | int
PositionShape = tuple[type, ...]
NEWEST_FIRST: PositionShape = (dt.datetime, uuid.UUID)


def _encode_value(value: PositionValue) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return value.hex
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"a cursor position cannot hold {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise TypeError("a cursor position holds finite numbers only")
    return value


def _decode_value(raw: Any, kind: type) -> PositionValue:
    if kind is dt.datetime:
        if not isinstance(raw, str):
            raise ValueError("not a timestamp")
        moment = dt.datetime.fromisoformat(raw)
        if moment.tzinfo is None:
            raise ValueError("naive timestamp")
        return moment
    if kind is uuid.UUID:
        if not isinstance(raw, str):
            raise ValueError("not an id")
        return uuid.UUID(hex=raw)
    if kind is int and isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if kind is float and isinstance(raw, int | float) and not isinstance(raw, bool):
        return float(raw)
    raise ValueError(f"not a {kind.__name__}")


class CursorCodec:
    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"inkwell-cursor:" + secret.encode()).digest()

    def encode(self, *position: PositionValue) -> str:
        """The cursor of `position`, e.g. `encode(created_at, row_id)`."""
        payload = orjson.dumps([_encode_value(value) for value in position])
        signature = hmac.new(self._key, payload, hashlib.sha256).digest()[:_SIGNATURE_BYTES]
        return _b64(payload) + "." + _b64(signature)

    def decode(self, cursor: str, shape: PositionShape = NEWEST_FIRST) -> tuple[Any, ...]:
        """The position a cursor names, its values of the types in `shape`; a 422 when the
        cursor is not one this API issued for a list ordered that way."""
        try:
            encoded_payload, encoded_signature = cursor.split(".")
            payload = _unb64(encoded_payload)
            signature = _unb64(encoded_signature)
            expected = hmac.new(self._key, payload, hashlib.sha256).digest()[:_SIGNATURE_BYTES]
            if not hmac.compare_digest(signature, expected):
                raise ValueError("signature mismatch")
            values = orjson.loads(payload)
            if not isinstance(values, list) or len(values) != len(shape):
                raise ValueError("a position of another shape")
            return tuple(_decode_value(raw, kind) for raw, kind in zip(values, shape, strict=True))
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


class Keyset:
    """Keyset paging, highest position first, over sort-key columns backed by an index.

    `Keyset(created_at, id)` is newest first; `Keyset(rank, created_at, id)` is most
    relevant first, then newest. The last column must be unique, so positions never tie.
    """

    __slots__ = ("columns",)

    def __init__(self, *columns: ColumnElement[Any]) -> None:
        self.columns = columns

    def page(self, query: Select[Any], after: Sequence[Any] | None, limit: int) -> Select[Any]:
        """`query` in this order, after the cursor's position, one row beyond `limit`
        (which tells whether there is a next page)."""
        query = query.order_by(*(column.desc() for column in self.columns))
        if after is not None:
            query = query.where(tuple_(*self.columns) < tuple(after))
        return query.limit(limit + 1)


def split_page(
    rows: Sequence[T], limit: int, codec: CursorCodec, position: Any = None
) -> tuple[Sequence[T], str | None]:
    """The page's rows and the cursor of the next page (None on the last one).

    `position(row)` gives a row's position (its sort key); by default its `(created_at, id)`.
    """
    if len(rows) <= limit:
        return rows, None
    last: Any = rows[limit - 1]
    values = position(last) if position else (last.created_at, last.id)
    return rows[:limit], codec.encode(*values)
