"""A follower: sign up, log in, follow a few authors others created, then read the feed (and
its next page) and the notifications, and mark them read. The feed must hold only the
followed authors' items, newest published first."""

from __future__ import annotations

from typing import Any

from locust import HttpUser, between, task

from scenarios.common import (
    KNOWN,
    LOGIN,
    SIGNUP,
    expect,
    new_person,
)

FOLLOW = "/api/v1/users/{user_id}/follow"
FEED = "/api/v1/content/feed"
FEED_PAGE = "/api/v1/content/feed?cursor={cursor}"
NOTIFICATIONS = "/api/v1/notifications"
READ_ALL = "/api/v1/notifications/read-all"
FOLLOWS_PER_USER = 5


class Follower(HttpUser):
    weight = 1
    wait_time = between(1, 3)

    def on_start(self) -> None:
        self.auth: dict[str, str] | None = None
        self.me: str | None = None
        self.followed: set[str] = set()

    def _sign_up(self) -> None:
        person = new_person()
        with self.client.post(
            "/api/v1/signup", json=person, name=SIGNUP, catch_response=True
        ) as response:
            created = expect(response, 201, "id")
            if created is None:
                return
            self.me = created["id"]
        with self.client.post(
            "/api/v1/auth/login",
            json={"email": person["email"], "password": person["password"]},
            name=LOGIN,
            catch_response=True,
        ) as response:
            tokens = expect(response, 200, "access_token")
            if tokens is not None:
                self.auth = {"Authorization": f"Bearer {tokens['access_token']}"}

    @task
    def follow_and_read(self) -> None:
        if self.auth is None:
            self._sign_up()
            if self.auth is None:
                return
        author = KNOWN.user()  # readers also pool the user list, where this user appears too
        if author not in (None, self.me) and len(self.followed) < FOLLOWS_PER_USER:
            with self.client.put(
                f"/api/v1/users/{author}/follow",
                headers=self.auth,
                name=FOLLOW,
                catch_response=True,
            ) as response:
                if response.status_code == 204:
                    self.followed.add(author)
                    response.success()
                else:
                    response.failure(f"follow answered {response.status_code}")
        cursor = self._feed_page(None)
        if cursor is not None:
            self._feed_page(cursor)
        with self.client.get(
            NOTIFICATIONS, headers=self.auth, name=NOTIFICATIONS, catch_response=True
        ) as response:
            body = expect(response, 200, "items", "unread_count")
            if body is not None and body["unread_count"] < 0:
                response.failure("a negative unread count")
        with self.client.post(
            READ_ALL, headers=self.auth, name=READ_ALL, catch_response=True
        ) as response:
            if response.status_code == 204:
                response.success()
            else:
                response.failure(f"read-all answered {response.status_code}")

    def _feed_page(self, cursor: str | None) -> str | None:
        assert self.auth is not None
        params = {"cursor": cursor} if cursor else {}
        with self.client.get(
            FEED,
            params=params,
            headers=self.auth,
            name=FEED_PAGE if cursor else FEED,
            catch_response=True,
        ) as response:
            body: Any = expect(response, 200, "items", "next_cursor")
            if body is None:
                return None
            authors = {item["author"]["id"] for item in body["items"]}
            if not authors <= self.followed:
                response.failure("the feed holds an author this user does not follow")
                return None
            times = [item["published_at"] for item in body["items"]]
            if times != sorted(times, reverse=True):
                response.failure("the feed is not newest first")
                return None
            return body["next_cursor"]  # type: ignore[no-any-return]
