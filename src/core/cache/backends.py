"""The cache port's two adapters: Redis (shared by replicas) and in-process (embedded default)."""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import cast

from redis.asyncio import Redis

# What an entry costs beyond its key and value (the tuple, the float, the dict slot): an
# estimate, so that many small entries count too.
ENTRY_OVERHEAD_BYTES = 200


def encode_invalidation(keys: tuple[str, ...], generations: tuple[str, ...]) -> bytes:
    """The invalidation channel's message (read by `near.LocalTier.apply`)."""
    if len(keys) > MAX_NAMED_KEYS:
        return b'{"all":true}'
    return json.dumps({"keys": list(keys), "generations": list(generations)}).encode()


# Beyond this many keys a message says "drop everything" instead of naming them (an author's
# 10,000 items would make a message no subscriber needs in full).
MAX_NAMED_KEYS = 1000


class MemoryBackend:
    """A bounded LRU with per-entry expiry, for the single-process embedded default.

    Bounded twice: by entries (`max_entries`) and by bytes (`max_bytes`: keys, values and
    `ENTRY_OVERHEAD_BYTES` each), so a few huge pages cannot take the process's memory any
    more than many small ones can. A value larger than `max_bytes` on its own is not kept.

    Fill tokens are bounded as well: each expires after the `ttl` it was reserved with, and at
    most `max_tokens` are kept (the oldest go first; a load whose token went simply does not
    fill). A miss that found nothing releases its token at once.
    """

    def __init__(
        self,
        max_entries: int,
        max_bytes: int,
        max_tokens: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._max_tokens = max_tokens if max_tokens is not None else max_entries
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._bytes = 0
        self._tokens: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._generations: dict[str, int] = {}

    @property
    def entries(self) -> int:
        return len(self._entries)

    @property
    def bytes_used(self) -> int:
        return self._bytes

    @property
    def fill_tokens(self) -> int:
        return len(self._tokens)

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires_at, value = entry
        if expires_at < self._clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return value

    async def reserve(self, key: str, token: str, ttl: int) -> None:
        now = self._clock()
        self._tokens[key] = (token, now + ttl)
        self._tokens.move_to_end(key)
        # Every token lives as long as the others (the policy's fill window), so the oldest
        # is also the first to expire.
        while self._tokens:
            _, (_, expires_at) = next(iter(self._tokens.items()))
            if len(self._tokens) <= self._max_tokens and expires_at >= now:
                break
            self._tokens.popitem(last=False)

    async def fill(self, key: str, token: str, value: bytes, ttl: int) -> bool:
        if not self._take_token(key, token):
            return False
        await self.set(key, value, ttl)
        return True

    async def release(self, key: str, token: str) -> bool:
        return self._take_token(key, token)

    def _take_token(self, key: str, token: str) -> bool:
        held = self._tokens.get(key)
        if held is None or held[0] != token:
            return False
        del self._tokens[key]
        return held[1] >= self._clock()

    async def set(self, key: str, value: bytes, ttl: int) -> None:
        self._drop(key)
        cost = _cost(key, value)
        if cost > self._max_bytes:
            return
        self._entries[key] = (self._clock() + ttl, value)
        self._bytes += cost
        while len(self._entries) > self._max_entries or self._bytes > self._max_bytes:
            oldest = next(iter(self._entries))
            self._drop(oldest)

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= _cost(key, entry[1])

    async def invalidate(self, keys: tuple[str, ...], generations: tuple[str, ...]) -> None:
        for key in keys:
            self._drop(key)
            self._tokens.pop(key, None)
        for key in generations:
            self._generations[key] = self._generations.get(key, 0) + 1

    async def get_versioned(self, generation_key: str, key: str) -> tuple[str, bytes | None]:
        full_key = f"{key}@{self._generations.get(generation_key, 0)}"
        return full_key, await self.get(full_key)


def _cost(key: str, value: bytes) -> int:
    return len(key) + len(value) + ENTRY_OVERHEAD_BYTES


_FILL_SCRIPT = """
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  redis.call('DEL', KEYS[2])
  return 1
end
return 0
"""

_RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""

# The generation and the page in one round trip. The page's key is derived from the
# generation inside the script, so it cannot be declared in KEYS: fine on one Redis (what
# Inkwell uses), not on Redis Cluster.
_GET_VERSIONED_SCRIPT = """
local generation = redis.call('GET', KEYS[1]) or '0'
return {generation, redis.call('GET', KEYS[2] .. '@' .. generation)}
"""


_NAMES_PER_ROUND_TRIP = 1000


class RedisBackend:
    """Shared across replicas; keys are namespaced by `prefix`.

    With `channel`, every invalidation is also published there (for the processes' local
    tiers, `near.py`), in the same pipeline as the DEL/INCR: Redis runs them in order, so no
    subscriber hears of it before the value is gone from Redis.
    """

    def __init__(self, client: Redis, prefix: str, channel: str | None = None) -> None:
        self._client = client
        self._prefix = prefix
        self._channel = channel
        self._fill = client.register_script(_FILL_SCRIPT)
        self._release = client.register_script(_RELEASE_SCRIPT)
        self._get_versioned = client.register_script(_GET_VERSIONED_SCRIPT)

    def _key(self, key: str) -> str:
        return self._prefix + key

    def _token_key(self, key: str) -> str:
        return self._prefix + key + ":fill"

    async def get(self, key: str) -> bytes | None:
        value = await self._client.get(self._key(key))
        return cast(bytes | None, value)

    async def reserve(self, key: str, token: str, ttl: int) -> None:
        await self._client.set(self._token_key(key), token, ex=max(ttl, 1))

    async def fill(self, key: str, token: str, value: bytes, ttl: int) -> bool:
        keys = [self._key(key), self._token_key(key)]
        return bool(await self._fill(keys=keys, args=[token, value, ttl]))

    async def release(self, key: str, token: str) -> bool:
        return bool(await self._release(keys=[self._token_key(key)], args=[token]))

    async def set(self, key: str, value: bytes, ttl: int) -> None:
        await self._client.set(self._key(key), value, ex=ttl)

    async def invalidate(self, keys: tuple[str, ...], generations: tuple[str, ...]) -> None:
        # Many keys per DEL, and a bounded number per round trip: redis-py packs each
        # command in Python (measured: one DEL per key costs ~20 us of CPU each, 200 ms for
        # an author's 10,000 items, all of it blocking the event loop; batched, a tenth of
        # that, yielding between round trips).
        names = [name for key in keys for name in (self._key(key), self._token_key(key))]
        batches = [
            names[i : i + _NAMES_PER_ROUND_TRIP]
            for i in range(0, len(names), _NAMES_PER_ROUND_TRIP)
        ]
        for batch in batches[:-1]:
            await self._client.delete(*batch)
        async with self._client.pipeline(transaction=False) as pipe:
            if batches:
                pipe.delete(*batches[-1])
            for key in generations:
                pipe.incr(self._key(key))
            if self._channel is not None:
                pipe.publish(self._channel, encode_invalidation(keys, generations))
            await pipe.execute()

    async def get_versioned(self, generation_key: str, key: str) -> tuple[str, bytes | None]:
        answer = await self._get_versioned(keys=[self._key(generation_key), self._key(key)])
        generation = int(answer[0])
        value = answer[1] if len(answer) > 1 else None  # a nil ends a Lua table
        return f"{key}@{generation}", cast(bytes | None, value)
