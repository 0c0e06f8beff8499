"""The users slice's hot read: a public profile answered before the framework routes the
request (see `src/middleware/hot_reads.py`).

A profile is never cached (profile data must always be fresh), so the hot read runs the
route's own query — one prepared statement on the driver's connection — and answers when it
finds the user. Anything else (an unknown or deactivated user, a malformed or non-canonical
id, `/users/me`) is left to the route, which answers it, errors included.
"""

from __future__ import annotations

from collections.abc import Mapping

from src.core.hot_reads import HotRead
from src.core.resources import Resources
from src.core.validation import canonical_uuid
from src.slices.users.errors import UserNotFound
from src.slices.users.queries import GetUser

PROFILE_TEMPLATE = "/api/v1/users/{user_id}"


async def profile(resources: Resources, params: Mapping[str, str], query: bytes) -> bytes | None:
    user_id = canonical_uuid(params["user_id"])
    if user_id is None:
        return None  # `/users/me`, a malformed id: the router's
    try:
        return await GetUser(resources.database.read).execute(user_id)
    except UserNotFound:
        return None  # the route's 404, with its problem body


HOT_READS = (HotRead(PROFILE_TEMPLATE, profile, cached=False),)
