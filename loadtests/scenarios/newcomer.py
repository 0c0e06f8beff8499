"""A newcomer's journey: sign up (with an Idempotency-Key), log in, publish, read the piece
back, edit it and read the edit — every write must be visible to the next read."""

from __future__ import annotations

import uuid

from locust import HttpUser, between, task

from scenarios.common import (
    CONTENT,
    CONTENTS,
    KNOWN,
    LOGIN,
    ME,
    SIGNUP,
    expect,
    new_content,
    new_person,
)


class Newcomer(HttpUser):
    weight = 2
    wait_time = between(1, 3)

    def on_start(self) -> None:
        self.token: str | None = None

    @task
    def journey(self) -> None:
        person = new_person()
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        with self.client.post(
            "/api/v1/signup", json=person, headers=headers, name=SIGNUP, catch_response=True
        ) as response:
            user = expect(response, 201, "id", "email")
            if user is None:
                return
            if user["email"] != person["email"] or "password" in user:
                response.failure("the signup answer does not describe the new account")
                return
            if response.headers.get("Location") != f"/api/v1/users/{user['id']}":
                response.failure("wrong Location")
                return
        KNOWN.users.append(user["id"])

        with self.client.post(
            "/api/v1/auth/login",
            json={"email": person["email"], "password": person["password"]},
            name=LOGIN,
            catch_response=True,
        ) as response:
            tokens = expect(response, 200, "access_token", "refresh_token")
            if tokens is None:
                return
        auth = {"Authorization": f"Bearer {tokens['access_token']}"}

        with self.client.get("/api/v1/users/me", headers=auth, name=ME, catch_response=True) as r:
            me = expect(r, 200, "id", "content_count")
            if me is not None and me["id"] != user["id"]:
                r.failure("/users/me answered for someone else")

        for _ in range(2):
            self._publish_read_edit(auth, user["id"])

    def _publish_read_edit(self, auth: dict[str, str], user_id: str) -> None:
        draft = new_content()
        with self.client.post(
            "/api/v1/content", json=draft, headers=auth, name=CONTENTS, catch_response=True
        ) as response:
            created = expect(response, 201, "id", "title", "author")
            if created is None:
                return
            if created["author"]["id"] != user_id or created["title"] != draft["title"]:
                response.failure("the created content is not what was sent")
                return
        content_id = created["id"]
        KNOWN.contents.append(content_id)

        self._read(content_id, draft["title"])
        new_title = draft["title"] + " (edited)"
        with self.client.patch(
            f"/api/v1/content/{content_id}",
            json={"title": new_title},
            headers=auth,
            name=CONTENT,
            catch_response=True,
        ) as response:
            edited = expect(response, 200, "title")
            if edited is not None and edited["title"] != new_title:
                response.failure("the edit was not applied")
        self._read(content_id, new_title)

    def _read(self, content_id: str, title: str) -> None:
        with self.client.get(
            f"/api/v1/content/{content_id}", name=CONTENT, catch_response=True
        ) as response:
            body = expect(response, 200, "id", "title")
            if body is not None and body["title"] != title:
                response.failure(f"stale read: {body['title']!r} instead of {title!r}")
