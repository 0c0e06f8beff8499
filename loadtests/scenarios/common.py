"""What every scenario shares: unique test data, route names and response checks.

Every virtual user makes its own identities (`lt-<run>-<random>@example.com`), so runs never
collide with each other or with earlier data in the same database. Ids that writers create
are shared with readers through `KNOWN`, a per-process pool (bounded, newest kept).
"""

from __future__ import annotations

import json
import os
import random
import uuid
from collections import deque
from typing import Any

RUN_ID = os.environ.get("LOADTEST_RUN_ID") or uuid.uuid4().hex[:8]
PASSWORD = "correct horse battery staple"  # noqa: S105 - a load-test account, not a secret

# Request names: route templates, never concrete paths, so the reports group by route.
SIGNUP = "/api/v1/signup"
LOGIN = "/api/v1/auth/login"
USERS = "/api/v1/users"
USER = "/api/v1/users/{user_id}"
ME = "/api/v1/users/me"
CONTENTS = "/api/v1/content"
CONTENTS_PAGE = "/api/v1/content?cursor={cursor}"
CONTENT = "/api/v1/content/{content_id}"


class Known:
    """Content and user ids seen so far (by any user in this process), newest kept."""

    def __init__(self, size: int = 500) -> None:
        self.contents: deque[str] = deque(maxlen=size)
        self.users: deque[str] = deque(maxlen=size)

    def content(self) -> str | None:
        return random.choice(self.contents) if self.contents else None

    def user(self) -> str | None:
        return random.choice(self.users) if self.users else None


KNOWN = Known()


def unique(prefix: str) -> str:
    return f"{prefix}-{RUN_ID}-{uuid.uuid4().hex[:12]}"


def new_person() -> dict[str, str]:
    handle = unique("lt")
    return {
        "name": f"Load Tester {handle[-6:]}",
        "email": f"{handle}@example.com",
        "password": PASSWORD,
        "country": "Nigeria",
        "state": "Lagos",
    }


def new_content() -> dict[str, str]:
    marker = unique("post")
    return {
        "title": f"Notes {marker}",
        "content": f"A load-test article ({marker}). " + "Lorem ipsum dolor sit amet. " * 8,
    }


def json_body(response: Any) -> Any:
    """The parsed JSON body, or None when it is not JSON."""
    try:
        return response.json()
    except (ValueError, json.JSONDecodeError):
        return None


def expect(response: Any, status: int, *keys: str) -> Any:
    """Mark `response` (a Locust `catch_response` context) failed unless it has `status` and a
    JSON object body with `keys`; returns the body (None once failed)."""
    if response.status_code != status:
        response.failure(f"expected {status}, got {response.status_code}: {response.text[:200]}")
        return None
    body = json_body(response)
    if not isinstance(body, dict):
        response.failure("the body is not a JSON object")
        return None
    missing = [key for key in keys if key not in body]
    if missing:
        response.failure(f"missing {missing} in the body")
        return None
    if not response.headers.get("X-Request-ID"):
        response.failure("no X-Request-ID on the response")
        return None
    return body


def remember_page(body: Any) -> None:
    for item in body.get("items", []) if isinstance(body, dict) else []:
        if "id" in item:
            KNOWN.contents.append(item["id"])
        author = item.get("author")
        if isinstance(author, dict) and "id" in author:
            KNOWN.users.append(author["id"])
