"""Idempotency-Key handling (pure ASGI): retries never execute a command twice.

The record of a key lives in the primary database (`idempotency_records`), so it survives
restarts and is shared by every replica. A keyed request goes through three steps:

1. **Claim** (its own short transaction): look the key up in the caller's scope. A completed
   record with the same fingerprint is *replayed*; another fingerprint is 422
   `idempotency_key_reused`; a record locked less than `IDEMPOTENCY_LOCK_SECONDS` ago is 409
   `idempotency_request_in_progress`; otherwise the key is claimed with a fresh lock token
   (a new row, or a take-over of an expired or abandoned one).
2. **Execute** the endpoint with a *commit gate* open: the use case's unit of work does all
   its writes and projections but hands its COMMIT to this middleware.
3. **Finish**: the captured response is written into the record *in the command's own
   transaction*, guarded by the lock token, and both commit together — or neither does. A
   process killed at any moment leaves either nothing (the key is retried once its lock
   expires) or both the effect and the stored response (the retry is a replay).

Not stored, so the key is released for a retry: validation failures (422), answers produced
before the endpoint ran (401, 429), 5xx answers and crashes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from loguru import logger
from opentelemetry import trace
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from src.core.db import CommitGate, commit_gate, primary_reader
from src.core.errors import ServiceUnavailable, send_problem
from src.core.identity import caller_from_scope
from src.core.tables import idempotency_records, utcnow

_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_RELEASED_STATUSES = frozenset({401, 422, 429})
MAX_KEY_LENGTH = 255


class KeyConflict(Exception):
    """The lock was taken over while this request ran (it outlived IDEMPOTENCY_LOCK_SECONDS)."""


def parse_key(raw: bytes) -> str | None:
    """The key from a bare token or a structured-field string (RFC 8941), else None."""
    text = raw.decode("latin-1").strip()
    if text.startswith('"'):
        if len(text) < 2 or not text.endswith('"'):
            return None
        inner, out, escaped = text[1:-1], [], False
        for char in inner:
            if escaped:
                if char not in '"\\':
                    return None
                out.append(char)
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                return None
            else:
                out.append(char)
        if escaped:
            return None
        text = "".join(out)
    elif '"' in text or "\\" in text:
        return None
    if not 1 <= len(text) <= MAX_KEY_LENGTH:
        return None
    if not all("\x21" <= char <= "\x7e" for char in text):
        return None
    return text


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    content_type: str | None
    location: str | None
    body: bytes


@dataclass(frozen=True, slots=True)
class Claim:
    lock_token: str


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _METHODS:
            await self.app(scope, receive, send)
            return
        raw_key = None
        for name, value in scope["headers"]:
            if name == b"idempotency-key":
                raw_key = value
                break
        if raw_key is None:
            await self.app(scope, receive, send)
            return
        resources = scope["app"].state.resources
        key = parse_key(raw_key)
        if key is None:
            await send_problem(
                send,
                scope,
                400,
                "invalid_idempotency_key",
                "The Idempotency-Key must be 1-255 visible ASCII characters, bare or quoted.",
            )
            return
        settings = resources.settings
        caller = caller_from_scope(scope, resources.tokens)
        owner = f"user:{caller}" if caller else "anonymous"
        body = await _read_body(receive)
        fingerprint = _fingerprint(scope, body)
        count = resources.metrics.idempotency_requests
        span = trace.get_current_span()
        engine: AsyncEngine = resources.database.write_engine

        outcome = await _claim(
            engine,
            owner,
            key,
            fingerprint,
            settings.idempotency_ttl_seconds,
            settings.idempotency_lock_seconds,
        )
        if isinstance(outcome, StoredResponse):
            _record(count, span, "replayed")
            await _replay(send, outcome)
            return
        if outcome == "mismatch":
            _record(count, span, "mismatch")
            await send_problem(
                send,
                scope,
                422,
                "idempotency_key_reused",
                "This Idempotency-Key was used with a different request (method, path, query "
                "or body). Use a new key for a new request.",
            )
            return
        if outcome == "in_progress":
            _record(count, span, "in_progress")
            await send_problem(
                send,
                scope,
                409,
                "idempotency_request_in_progress",
                "A request with this Idempotency-Key is still being processed; retry shortly.",
                headers=[(b"retry-after", b"1")],
            )
            return
        assert isinstance(outcome, Claim)
        await self._execute(scope, body, receive, send, engine, owner, key, outcome, count, span)

    async def _execute(
        self, scope: Scope, body: bytes, receive: Receive, send: Send, engine: AsyncEngine,
        owner: str, key: str, claim: Claim, count: Any, span: Any,
    ) -> None:  # fmt: skip
        gate = CommitGate()
        token = commit_gate.set(gate)
        captured_start: Message | None = None
        captured_body: list[bytes] = []
        replayed_body = False

        async def replay_receive() -> Message:
            nonlocal replayed_body
            if not replayed_body:
                replayed_body = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # the body is spent: now only a real disconnect comes

        async def capture(message: Message) -> None:
            nonlocal captured_start
            if message["type"] == "http.response.start":
                captured_start = message
            elif message["type"] == "http.response.body":
                captured_body.append(message.get("body", b""))

        try:
            await self.app(scope, replay_receive, capture)
        except BaseException:
            await _abandon(gate, engine, owner, key, claim)
            _record(count, span, "released")
            raise
        finally:
            commit_gate.reset(token)

        assert captured_start is not None, "the application sent no response"
        status = captured_start["status"]
        headers = captured_start.get("headers", [])
        payload = b"".join(captured_body)
        if status >= 500 or status in _RELEASED_STATUSES:
            await _abandon(gate, engine, owner, key, claim)
            _record(count, span, "released")
            await _send(send, status, headers, payload)
            return
        stored = StoredResponse(
            status=status,
            content_type=_header(headers, b"content-type"),
            location=_header(headers, b"location"),
            body=payload,
        )
        try:
            await _complete(gate, engine, owner, key, claim, stored)
        except KeyConflict:
            _record(count, span, "in_progress")
            await send_problem(
                send,
                scope,
                409,
                "idempotency_request_in_progress",
                "This request outlived its Idempotency-Key lock and was not applied; retry.",
                headers=[(b"retry-after", b"1")],
            )
            return
        except Exception as error:
            logger.opt(exception=error).warning("could not commit an idempotent request")
            await _release(engine, owner, key, claim)
            _record(count, span, "released")
            await send_problem(
                send,
                scope,
                503,
                ServiceUnavailable.code,
                ServiceUnavailable.detail,
                headers=[(b"retry-after", b"1")],
            )
            return
        _record(count, span, "stored")
        await _send(send, status, headers, payload)


def _record(count: Any, span: Any, outcome: str) -> None:
    """`idempotency_requests_total{outcome}` and the request span's attribute, together."""
    count.labels(outcome).inc()
    span.set_attribute("idempotency.outcome", outcome)


# --- the three database steps ---------------------------------------------------------------


async def _claim(
    engine: AsyncEngine, owner: str, key: str, fingerprint: str, ttl: int, lock_seconds: int
) -> StoredResponse | Claim | str:
    """Look the key up and claim it. A lost insert race is looked at once more."""
    try:
        return await _claim_once(engine, owner, key, fingerprint, ttl, lock_seconds)
    except IntegrityError:  # a concurrent request inserted the key first
        return await _claim_once(engine, owner, key, fingerprint, ttl, lock_seconds)


async def _claim_once(
    engine: AsyncEngine, owner: str, key: str, fingerprint: str, ttl: int, lock_seconds: int
) -> StoredResponse | Claim | str:
    now = utcnow()
    lock_token = secrets.token_hex(16)
    async with engine.connect() as connection, connection.begin():
        row = await _select_record(connection, owner, key)
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
                    expires_at=now + dt.timedelta(seconds=ttl),
                )
            )
            return Claim(lock_token)
        if row.fingerprint != fingerprint:
            return "mismatch"
        if row.status == "completed":
            return StoredResponse(
                status=row.response_status,
                content_type=row.response_content_type,
                location=row.response_location,
                body=row.response_body or b"",
            )
        if row.locked_at is not None and row.locked_at > now - dt.timedelta(seconds=lock_seconds):
            return "in_progress"
        # abandoned (its process died, or it outlived its lock): take it over
        taken = await connection.execute(
            _where(update(idempotency_records), owner, key)
            .where(idempotency_records.c.lock_token == row.lock_token)
            .values(lock_token=lock_token, locked_at=now)
        )
        return Claim(lock_token) if taken.rowcount == 1 else "in_progress"


async def _complete(
    gate: CommitGate, engine: AsyncEngine, owner: str, key: str, claim: Claim,
    stored: StoredResponse,
) -> None:  # fmt: skip
    async def store(connection: AsyncConnection) -> None:
        result = await connection.execute(
            _where(update(idempotency_records), owner, key)
            .where(idempotency_records.c.lock_token == claim.lock_token)
            .values(
                status="completed",
                lock_token=None,
                locked_at=None,
                response_status=stored.status,
                response_content_type=stored.content_type,
                response_location=stored.location,
                response_body=stored.body,
            )
        )
        if result.rowcount != 1:
            raise KeyConflict()

    if gate.unit_of_work is not None:
        await gate.unit_of_work.finish(store)
        return
    async with engine.connect() as connection, connection.begin():
        await store(connection)


async def _abandon(
    gate: CommitGate, engine: AsyncEngine, owner: str, key: str, claim: Claim
) -> None:
    if gate.unit_of_work is not None:
        await gate.unit_of_work.rollback()
    await _release(engine, owner, key, claim)


async def _release(engine: AsyncEngine, owner: str, key: str, claim: Claim) -> None:
    """Forget our claim so the client may retry with the same key at once."""
    try:
        async with engine.connect() as connection, connection.begin():
            await connection.execute(
                _where(delete(idempotency_records), owner, key).where(
                    idempotency_records.c.lock_token == claim.lock_token
                )
            )
    except Exception as error:  # the lock then simply expires
        logger.opt(exception=error).warning("could not release an idempotency key")


async def _select_record(connection: AsyncConnection, owner: str, key: str) -> Any:
    return (
        await connection.execute(
            select(idempotency_records).where(
                idempotency_records.c.scope == owner, idempotency_records.c.key == key
            )
        )
    ).first()


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


# --- ASGI helpers -------------------------------------------------------------------------------


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _fingerprint(scope: Scope, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (scope["method"].encode(), scope["path"].encode(), scope.get("query_string", b"")):
        digest.update(part)
        digest.update(b"\n")
    digest.update(body)
    return digest.hexdigest()


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _replay(send: Send, stored: StoredResponse) -> None:
    headers = [
        (b"idempotent-replayed", b"true"),
        (b"content-length", str(len(stored.body)).encode()),
    ]
    if stored.content_type:
        headers.append((b"content-type", stored.content_type.encode("latin-1")))
    if stored.location:
        headers.append((b"location", stored.location.encode("latin-1")))
    await _send(send, stored.status, headers, stored.body)
