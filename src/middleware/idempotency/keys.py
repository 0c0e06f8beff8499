"""The Idempotency-Key header (IETF draft): parsing, and the fingerprint of a request."""

from __future__ import annotations

import hashlib

from starlette.types import Scope

MAX_KEY_LENGTH = 255


def parse_key(raw: bytes) -> str | None:
    """The key from a bare token or a structured-field string (RFC 8941), else None."""
    text = raw.decode("latin-1").strip()
    if text.startswith('"'):
        if len(text) < 2 or not text.endswith('"'):
            return None
        inner, out, escaped = text[1:-1], [], False
        for char in inner:
            if escaped:
                if char not in '"\\':
                    return None
                out.append(char)
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                return None
            else:
                out.append(char)
        if escaped:
            return None
        text = "".join(out)
    elif '"' in text or "\\" in text:
        return None
    if not 1 <= len(text) <= MAX_KEY_LENGTH:
        return None
    if not all("\x21" <= char <= "\x7e" for char in text):
        return None
    return text


def fingerprint(scope: Scope, body: bytes) -> str:
    """What makes two requests "the same": method, concrete path, query and body."""
    digest = hashlib.sha256()
    for part in (scope["method"].encode(), scope["path"].encode(), scope.get("query_string", b"")):
        digest.update(part)
        digest.update(b"\n")
    digest.update(body)
    return digest.hexdigest()
