"""Password hashing and JWTs — the only module that knows bcrypt or the JWT library.

* bcrypt is CPU-bound (about a quarter second at 12 rounds), so hashing and verification run
  in a dedicated thread pool sized to the machine's cores, and an asyncio semaphore of the same
  size makes callers queue on the event loop (where a cancelled request simply stops waiting)
  rather than inside the executor. bcrypt releases the GIL, so the pool uses every core.
* Tokens are HS256 JWTs with `sub, exp, iat, jti, sid, type`: `sid` is the session the
  token belongs to (see `sessions` in `tables.py`), so ending a session refuses its tokens.
  Only HS256 is accepted on decode, so `alg: none` and algorithm-confusion tokens are
  refused; a token without a session id is refused too. Swapping the JWT library means
  changing `TokenService` alone.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import bcrypt
from jose import JWTError, jwt

from src.core.errors.types import InvalidToken

TokenType = Literal["access", "refresh"]
BCRYPT_MAX_BYTES = 72
_ALGORITHM = "HS256"
_CLOCK_SKEW_SECONDS = 30


class PasswordHasher:
    """bcrypt off the event loop, bounded to one hash per core at a time."""

    def __init__(self, rounds: int, concurrency: int) -> None:
        self._rounds = rounds
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="bcrypt")
        self._slots = asyncio.Semaphore(concurrency)
        # Verified against when the e-mail is unknown, so both failures cost one bcrypt.
        self._dummy_hash = bcrypt.hashpw(b"inkwell-timing-equaliser", bcrypt.gensalt(rounds))

    async def hash(self, password: str) -> str:
        secret = password.encode()
        if len(secret) > BCRYPT_MAX_BYTES:
            raise ValueError("bcrypt accepts at most 72 bytes")
        hashed: bytes = await self._run(bcrypt.hashpw, secret, bcrypt.gensalt(self._rounds))
        return hashed.decode()

    async def verify(self, password: str, password_hash: str | None) -> bool:
        """Whether `password` matches; with `password_hash=None` it costs the same and fails."""
        secret = password.encode()
        if len(secret) > BCRYPT_MAX_BYTES:
            secret = secret[:0]  # still pay for one bcrypt below, then fail
        target = password_hash.encode() if password_hash else self._dummy_hash
        matched = await self._run(_checkpw, secret, target)
        return matched and password_hash is not None and len(password.encode()) <= 72

    async def _run(self, func: Any, *args: Any) -> Any:
        async with self._slots:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, func, *args)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _checkpw(secret: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(secret, hashed)
    except ValueError:  # a corrupt stored hash is a failed login, not a crash
        return False


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    # What the session row keeps of the refresh token: its `jti` and when it expires.
    refresh_token_id: str
    refresh_expires_at: int


@dataclass(frozen=True, slots=True)
class TokenClaims:
    subject: uuid.UUID
    session_id: uuid.UUID
    token_type: TokenType
    token_id: str
    issued_at: int
    expires_at: int


class TokenService:
    """Issues and checks HS256 JWTs."""

    def __init__(self, secret: str, access_ttl: int, refresh_ttl: int) -> None:
        self._secret = secret
        self._ttl: dict[TokenType, int] = {"access": access_ttl, "refresh": refresh_ttl}

    def issue_pair(self, subject: uuid.UUID, session_id: uuid.UUID) -> TokenPair:
        now = int(time.time())
        refresh_id = uuid.uuid4().hex
        return TokenPair(
            access_token=self.issue(subject, session_id, "access", now=now),
            refresh_token=self.issue(subject, session_id, "refresh", now=now, token_id=refresh_id),
            expires_in=self._ttl["access"],
            refresh_token_id=refresh_id,
            refresh_expires_at=now + self._ttl["refresh"],
        )

    def issue(
        self,
        subject: uuid.UUID,
        session_id: uuid.UUID,
        token_type: TokenType,
        *,
        now: int | None = None,
        token_id: str | None = None,
    ) -> str:
        issued_at = int(time.time()) if now is None else now
        claims = {
            "sub": str(subject),
            "sid": str(session_id),
            "iat": issued_at,
            "exp": issued_at + self._ttl[token_type],
            "jti": token_id or uuid.uuid4().hex,
            "type": token_type,
        }
        token: str = jwt.encode(claims, self._secret, algorithm=_ALGORITHM)
        return token

    def decode(
        self, token: str, expected: TokenType, *, allow_expired: bool = False
    ) -> TokenClaims:
        """The verified claims of `token`, or `InvalidToken`.

        `allow_expired` accepts a genuine token past its expiry (logging out with a stale
        refresh token); the signature and every other claim are still checked.
        """
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") != _ALGORITHM:
                raise InvalidToken()
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[_ALGORITHM],
                options={
                    # python-jose verifies every required claim, so "exp" is only required
                    # where it is verified; its presence is checked below either way.
                    "require_exp": not allow_expired,
                    "verify_exp": not allow_expired,
                    "require_iat": True,
                    "require_sub": True,
                    "require_jti": True,
                    "leeway": _CLOCK_SKEW_SECONDS,
                },
            )
        except (JWTError, ValueError, TypeError, KeyError) as error:
            raise InvalidToken() from error
        if claims.get("type") != expected:
            raise InvalidToken()
        issued_at = claims.get("iat")
        expires_at = claims.get("exp")
        if not isinstance(issued_at, int) or not isinstance(expires_at, int):
            raise InvalidToken()
        if issued_at > time.time() + _CLOCK_SKEW_SECONDS:
            raise InvalidToken()
        try:
            subject = uuid.UUID(str(claims["sub"]))
            session_id = uuid.UUID(str(claims["sid"]))
        except (KeyError, ValueError) as error:
            raise InvalidToken() from error
        return TokenClaims(
            subject=subject,
            session_id=session_id,
            token_type=expected,
            token_id=str(claims["jti"]),
            issued_at=issued_at,
            expires_at=expires_at,
        )
