"""At most one reader of the outbox at a time (the embedded runner, or the relay).

Several processes may read the outbox — serve workers without Redis on PostgreSQL, or several
`inkwell worker` replicas — but only one should move its rows at a time, or they would all
deliver (or relay) every row: harmless, handlers deduplicate, but wasteful and out of order.

* PostgreSQL: `pg_try_advisory_lock` held on a dedicated connection. The lock lives as long as
  that session: a process that dies (SIGKILL included) loses it when PostgreSQL notices the
  connection gone, and another takes over. A holder checks its connection (at most once a
  second), so one whose connection broke stops and competes again.
* SQLite (one file, normally one process): no lock; with several processes, deduplication
  keeps the effects exact.
* Redis lease (`RedisLease`, for the relay of SQLite + Redis): `SET key token NX PX ttl`,
  renewed each pass while it is still ours; a dead holder's lease expires after `ttl`.
"""

from __future__ import annotations

import secrets
import time
from typing import Any, Protocol

from loguru import logger
from opentelemetry.instrumentation.utils import suppress_instrumentation
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

# The advisory-lock key of the outbox's reader (any 64-bit number no other lock uses).
OUTBOX_LOCK_KEY = 0x1A4B_0B0C


class ReaderLock(Protocol):
    async def hold(self) -> bool:
        """Take or keep the lock; whether this process holds it now."""
        ...

    async def release(self) -> None: ...


class NoLock:
    async def hold(self) -> bool:
        return True

    async def release(self) -> None:
        pass


class AdvisoryLock:
    # How often a holder checks that its lock connection is still alive.
    CHECK_EVERY_SECONDS = 1.0

    def __init__(self, engine: AsyncEngine, key: int = OUTBOX_LOCK_KEY) -> None:
        self._engine = engine
        self._key = key
        self._connection: AsyncConnection | None = None
        self._checked_at = 0.0

    async def hold(self) -> bool:
        with suppress_instrumentation():
            return await self._hold()

    async def _hold(self) -> bool:
        if self._connection is not None:
            now = time.monotonic()
            if now - self._checked_at < self.CHECK_EVERY_SECONDS:
                return True
            try:
                await self._connection.execute(text("SELECT 1"))
                self._checked_at = now
                return True
            except Exception:
                logger.warning("the outbox lock's connection broke; competing for it again")
                await self.release()
        connection = await self._engine.connect()
        try:
            # Autocommit: the session holds the lock, never an open transaction (which would
            # keep vacuum from cleaning the outbox for as long as the lock is held).
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            got = (
                await connection.execute(
                    text("SELECT pg_try_advisory_lock(:key)"), {"key": self._key}
                )
            ).scalar_one()
        except BaseException:
            await connection.close()
            raise
        if not got:
            await connection.close()
            return False
        self._connection = connection
        self._checked_at = time.monotonic()
        logger.info("this process now reads the outbox")
        return True

    async def release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            await connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})
        except Exception:  # the session is gone, and the lock with it
            logger.opt(exception=True).debug("advisory unlock failed")
        finally:
            try:
                await connection.close()
            except Exception:
                logger.opt(exception=True).debug("close failed")


_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


class RedisLease:
    def __init__(self, redis: Any, key: str, ttl_seconds: float = 10.0) -> None:
        self._redis = redis
        self._key = key
        self._ttl_ms = int(ttl_seconds * 1000)
        self._token = secrets.token_hex(16)
        self._held = False

    async def hold(self) -> bool:
        if self._held:
            renewed = await self._redis.eval(_RENEW, 1, self._key, self._token, self._ttl_ms)
            if renewed:
                return True
            self._held = False
            logger.warning("the relay's lease expired; competing for it again")
        got = await self._redis.set(self._key, self._token, nx=True, px=self._ttl_ms)
        self._held = bool(got)
        if self._held:
            logger.info("this process now relays the outbox")
        return self._held

    async def release(self) -> None:
        if self._held:
            self._held = False
            try:
                await self._redis.eval(_RELEASE, 1, self._key, self._token)
            except Exception:
                logger.opt(exception=True).debug("lease release failed")


def reader_lock(engine: AsyncEngine) -> ReaderLock:
    return AdvisoryLock(engine) if engine.dialect.name == "postgresql" else NoLock()
