"""Opaque, tamper-evident keyset cursors.

A cursor names the last row of a page by its sort key `(created_at, id)`. It is base64url JSON
followed by an HMAC, so a client can neither read meaning into it nor forge one that skips
the index; a garbled or forged cursor is a 422 `validation_error` on the `cursor` parameter.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from sqlalchemy import ColumnElement, Select, tuple_

from src.core.errors.types import ValidationFailed

T = TypeVar("T")

_SIGNATURE_BYTES = 12


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
    if len(text) > 512:
        raise ValueError("cursor too long")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


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
