"""The users slice's hot read: a public profile answered before the framework routes the
request (see `src/middleware/hot_reads.py`).

A profile is never cached (profile data must always be fresh), so the hot read runs the
route's own query — one prepared statement on the driver's connection — and answers with
its result: the profile, or the use case's `UserNotFound` (no user has the id), which the
layer answers as the route's 404, so that unknown ids do not run the query twice.
A malformed or non-canonical id and `/users/me` are left to the route.
"""

from __future__ import annotations

from collections.abc import Mapping

from src.core.hot_reads import HotRead
from src.core.resources import Resources
from src.core.validation import canonical_uuid
from src.slices.users.queries import GetUser

PROFILE_TEMPLATE = "/api/v1/users/{user_id}"


async def profile(resources: Resources, params: Mapping[str, str], query: bytes) -> bytes | None:
    user_id = canonical_uuid(params["user_id"])
    if user_id is None:
        return None  # `/users/me`, a malformed id: the router's
    return await GetUser(resources.database.read).execute(user_id)


HOT_READS = (HotRead(PROFILE_TEMPLATE, profile, cached=False),)
