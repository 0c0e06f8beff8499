"""Readers: mostly single content items, then the lists and user profiles."""

from __future__ import annotations

import random

from locust import HttpUser, between, task

from scenarios.common import (
    CONTENT,
    CONTENTS,
    CONTENTS_PAGE,
    KNOWN,
    USER,
    USERS,
    expect,
    remember_page,
)


class Reader(HttpUser):
    weight = 7
    wait_time = between(0.2, 1.0)

    def on_start(self) -> None:
        self.next_cursor: str | None = None
        self.list_content()

    @task(10)
    def read_content(self) -> None:
        content_id = KNOWN.content()
        if content_id is None:
            self.list_content()
            return
        with self.client.get(
            f"/api/v1/content/{content_id}", name=CONTENT, catch_response=True
        ) as response:
            if response.status_code == 404:  # deleted since we saw it: a correct answer
                response.success()
                return
            body = expect(response, 200, "id", "title", "author")
            if body is None:
                return
            if body["id"] != content_id:
                response.failure("answered with another content item")
            elif response.headers.get("Cache-Status") is None:
                response.failure("no Cache-Status on a cached read")

    @task(4)
    def list_content(self) -> None:
        limit = random.choice((10, 20))
        with self.client.get(
            f"/api/v1/content?limit={limit}", name=CONTENTS, catch_response=True
        ) as response:
            body = expect(response, 200, "items", "next_cursor")
            if body is None:
                return
            if len(body["items"]) > limit:
                response.failure("the page is longer than the limit")
                return
            remember_page(body)
            self.next_cursor = body["next_cursor"]

    @task(1)
    def next_page(self) -> None:
        if not self.next_cursor:
            return
        with self.client.get(
            "/api/v1/content",
            params={"cursor": self.next_cursor},
            name=CONTENTS_PAGE,
            catch_response=True,
        ) as response:
            body = expect(response, 200, "items", "next_cursor")
            if body is not None:
                remember_page(body)
                self.next_cursor = body["next_cursor"]

    @task(4)
    def read_profile(self) -> None:
        user_id = KNOWN.user()
        if user_id is None:
            return
        with self.client.get(f"/api/v1/users/{user_id}", name=USER, catch_response=True) as r:
            body = expect(r, 200, "id", "display_name", "content_count", "contents")
            if body is None:
                return
            if "email" in body or "phone_number" in body:
                r.failure("a public profile leaks private fields")
            elif body["id"] != user_id:
                r.failure("answered with another user")

    @task(1)
    def list_users(self) -> None:
        with self.client.get("/api/v1/users?limit=20", name=USERS, catch_response=True) as r:
            body = expect(r, 200, "items", "next_cursor")
            if body is not None:
                for item in body["items"]:
                    if "email" in item:
                        r.failure("the user list leaks e-mail addresses")
                        return
                    KNOWN.users.append(item["id"])
