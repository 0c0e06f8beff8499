"""Retrying clients: every keyed create is sent twice, as a client does after a timeout. The
second answer must be the stored one (`Idempotent-Replayed: true`), byte for byte, and the
command must not run twice."""

from __future__ import annotations

import uuid

from locust import HttpUser, between, task

from scenarios.common import (
    CONTENTS,
    KNOWN,
    LOGIN,
    SIGNUP,
    expect,
    new_content,
    new_person,
)


class RetryingClient(HttpUser):
    weight = 1
    wait_time = between(0.5, 2)

    def on_start(self) -> None:
        self.auth: dict[str, str] | None = None
        person = new_person()
        first = self._send_twice("/api/v1/signup", person, SIGNUP, {}, 201)
        if first is None:
            return
        KNOWN.users.append(first["id"])
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
    def create_twice(self) -> None:
        if self.auth is None:
            return
        created = self._send_twice("/api/v1/content", new_content(), CONTENTS, self.auth, 201)
        if created is not None:
            KNOWN.contents.append(created["id"])

    def _send_twice(
        self, path: str, body: dict[str, str], name: str, headers: dict[str, str], status: int
    ) -> dict[str, str] | None:
        keyed = {**headers, "Idempotency-Key": f"retry-{uuid.uuid4()}"}
        with self.client.post(
            path, json=body, headers=keyed, name=name, catch_response=True
        ) as response:
            first = expect(response, status, "id")
            if first is None:
                return None
            if response.headers.get("Idempotent-Replayed") is not None:
                response.failure("a first request was answered as a replay")
                return None
            original = response.content
        with self.client.post(
            path, json=body, headers=keyed, name=f"{name} (retry)", catch_response=True
        ) as response:
            if expect(response, status, "id") is None:
                return None
            if response.headers.get("Idempotent-Replayed") != "true":
                response.failure("the retry was not answered from the idempotency store")
                return None
            if response.content != original:
                response.failure("the replayed body differs from the original")
                return None
        return first
