"""The idempotency records (`idempotency_records`, on the primary) and their purge.

A key's life, as the command boundary drives it:

1. `claim()`, in its own short transaction: a completed record with the same fingerprint is
   answered with the stored response; another fingerprint is a mismatch; a record locked less
   than `IDEMPOTENCY_LOCK_SECONDS` ago is in progress; otherwise the key is claimed with a
   fresh lock token (a new row, or a take-over of an expired or abandoned one).
2. `record()` is a final step of the command's own transaction: it writes the answer into the
   claimed row, guarded by the lock token, so the effect and the stored answer commit together
   or not at all. A process killed at any moment leaves either nothing (the key can be retried
   once its lock expires) or both (the retry is a replay).
3. `release()` forgets a claim whose request produced nothing worth storing, so the client may
   retry with the same key at once.

The records live in the database, never only in Redis: they survive restarts and every replica
shares them. `purge_expired()` (`inkwell purge-idempotency`, a CronJob) deletes old ones.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from loguru import logger
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from src.core.db.engines import primary_reader
from src.core.db.uow import FinalStep
from src.core.tables import idempotency_records, utcnow

Header = tuple[bytes, bytes]
# The headers of an answer that belong to it, and are replayed with it.
REPLAYED_HEADERS = frozenset({b"content-type", b"location", b"cache-control"})


class KeyConflict(Exception):
    """The lock was taken over while this request ran (it outlived IDEMPOTENCY_LOCK_SECONDS)."""


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    headers: tuple[Header, ...]
    body: bytes

    @classmethod
    def of(cls, status: int, headers: Sequence[Header], body: bytes) -> StoredResponse:
        kept = tuple((name, value) for name, value in headers if name.lower() in REPLAYED_HEADERS)
        return cls(status, kept, body)


@dataclass(frozen=True, slots=True)
class Claim:
    owner: str
    key: str
    lock_token: str


ClaimOutcome = StoredResponse | Claim | Literal["mismatch", "in_progress"]


class IdempotencyStore:
    def __init__(self, engine: AsyncEngine, ttl_seconds: int, lock_seconds: int) -> None:
        self._engine = engine
        self._ttl = dt.timedelta(seconds=ttl_seconds)
        self._lock = dt.timedelta(seconds=lock_seconds)

    async def claim(self, owner: str, key: str, fingerprint: str) -> ClaimOutcome:
        """Look the key up and claim it. A lost insert race is looked at once more."""
        try:
            return await self._claim_once(owner, key, fingerprint)
        except IntegrityError:  # a concurrent request inserted the key first
            return await self._claim_once(owner, key, fingerprint)

    async def _claim_once(self, owner: str, key: str, fingerprint: str) -> ClaimOutcome:
        now = utcnow()
        lock_token = secrets.token_hex(16)
        async with self._engine.connect() as connection, connection.begin():
            row = (
                await connection.execute(_where(select(idempotency_records), owner, key))
            ).first()
            if row is not None and row.expires_at <= now:
                await connection.execute(_where(delete(idempotency_records), owner, key))
                row = None
            if row is None:
                await connection.execute(
                    insert(idempotency_records).values(
                        scope=owner,
                        key=key,
                        fingerprint=fingerprint,
                        status="in_progress",
                        lock_token=lock_token,
                        locked_at=now,
                        created_at=now,
                        expires_at=now + self._ttl,
                    )
                )
                return Claim(owner, key, lock_token)
            if row.fingerprint != fingerprint:
                return "mismatch"
            if row.status == "completed":
                return _stored(row)
            if row.locked_at is not None and row.locked_at > now - self._lock:
                return "in_progress"
            # abandoned (its process died, or it outlived its lock): take it over
            taken = await connection.execute(
                _where(update(idempotency_records), owner, key)
                .where(idempotency_records.c.lock_token == row.lock_token)
                .values(lock_token=lock_token, locked_at=now)
            )
            return Claim(owner, key, lock_token) if taken.rowcount == 1 else "in_progress"

    def record(self, claim: Claim, response: StoredResponse) -> FinalStep:
        """The final step that stores `response` under `claim` in the command's transaction.

        Raises `KeyConflict` (and so rolls the command back) when the claim was taken over.
        """

        async def store(connection: AsyncConnection) -> None:
            result = await connection.execute(
                _where(update(idempotency_records), claim.owner, claim.key)
                .where(idempotency_records.c.lock_token == claim.lock_token)
                .values(
                    status="completed",
                    lock_token=None,
                    locked_at=None,
                    response_status=response.status,
                    response_headers=orjson.dumps(
                        [[name.decode("latin-1"), value.decode("latin-1")]
                         for name, value in response.headers]
                    ).decode(),
                    response_body=response.body,
                )
            )  # fmt: skip
            if result.rowcount != 1:
                raise KeyConflict()

        return store

    async def release(self, claim: Claim) -> None:
        """Forget our claim so the client may retry with the same key at once."""
        try:
            async with self._engine.connect() as connection, connection.begin():
                await connection.execute(
                    _where(delete(idempotency_records), claim.owner, claim.key).where(
                        idempotency_records.c.lock_token == claim.lock_token
                    )
                )
        except Exception as error:  # the lock then simply expires
            logger.opt(exception=error).warning("could not release an idempotency key")


def _stored(row: Any) -> StoredResponse:
    pairs = orjson.loads(row.response_headers or "[]")
    headers = tuple((name.encode("latin-1"), value.encode("latin-1")) for name, value in pairs)
    return StoredResponse(row.response_status, headers, row.response_body or b"")


def _where(statement: Any, owner: str, key: str) -> Any:
    return statement.where(idempotency_records.c.scope == owner, idempotency_records.c.key == key)


async def purge_expired(engine: AsyncEngine, *, batch: int = 1000) -> int:
    """Delete expired records in small batches (safe to run while the service serves)."""
    removed = 0
    while True:
        async with primary_reader(engine) as reader:
            keys = (
                await reader.execute(
                    select(idempotency_records.c.scope, idempotency_records.c.key)
                    .where(idempotency_records.c.expires_at <= utcnow())
                    .limit(batch)
                )
            ).all()
        if not keys:
            return removed
        async with engine.connect() as connection, connection.begin():
            for owner, key in keys:
                result = await connection.execute(
                    _where(delete(idempotency_records), owner, key).where(
                        idempotency_records.c.expires_at <= utcnow()
                    )
                )
                removed += result.rowcount
