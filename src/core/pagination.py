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

import orjson

from src.core.errors import ValidationFailed

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
