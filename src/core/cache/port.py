"""The cache port: what a cache backend offers the cache policy (`policy.Cache`)."""

from __future__ import annotations

from typing import Literal, Protocol

CacheStatus = Literal["hit", "miss", "bypass"]


class CacheBackend(Protocol):
    async def get(self, key: str) -> bytes | None: ...
    async def reserve(self, key: str, token: str, ttl: int) -> None: ...
    async def fill(self, key: str, token: str, value: bytes, ttl: int) -> bool:
        """Store `value` if `token` still holds the key; whether it did."""
        ...

    async def release(self, key: str, token: str) -> bool:
        """Drop `token` (a load that found nothing to store); whether it still held the key."""
        ...

    async def set(self, key: str, value: bytes, ttl: int) -> None: ...
    async def invalidate(self, keys: tuple[str, ...], generations: tuple[str, ...]) -> None: ...
    async def get_versioned(self, generation_key: str, key: str) -> tuple[str, bytes | None]:
        """(`key@<current generation>`, its value): one round trip where the backend can."""
        ...
