"""JWT access tokens (HS256). A token carries the user id and role, so the hot path needs
no database read to know who is calling; a role change takes effect at the next login."""

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from bson import ObjectId
from bson.errors import InvalidId

from accounts.errors import InvalidToken
from models import Role

ALGORITHM = "HS256"
# Tokens verified recently, so a client's every request does not pay the HMAC and the
# claims' parsing again (about 0.13 ms each): a few MB at most.
VERIFIED_CACHE_SIZE = 10_000


@dataclass(frozen=True)
class Claims:
    user_id: ObjectId
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


class TokenService:
    def __init__(
        self, secret: str, ttl_seconds: int, clock: Callable[[], float] = time.time
    ) -> None:
        self._secret = secret
        self._ttl = timedelta(seconds=ttl_seconds)
        self._clock = clock
        # token -> (its claims, its exp): least recently used first.
        self._verified: OrderedDict[str, tuple[Claims, float]] = OrderedDict()

    def issue(self, user_id: ObjectId, role: Role, now: datetime | None = None) -> str:
        issued_at = now or datetime.now(UTC)
        payload = {
            "sub": str(user_id),
            "role": role.value,
            "iat": issued_at,
            "exp": issued_at + self._ttl,
        }
        return jwt.encode(payload, self._secret, algorithm=ALGORITHM)

    def decode(self, token: str) -> Claims:
        """The token's claims; raises InvalidToken("expired" | "invalid"). A token verified
        before is answered from a bounded cache until its `exp` (whether its user still
        exists is the liveness check's business, on every request either way)."""
        known = self._verified.get(token)
        if known is not None:
            claims, expires = known
            if self._clock() >= expires:
                raise InvalidToken("expired")
            self._verified.move_to_end(token)
            return claims
        try:
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                options={"require": ["sub", "role", "exp", "iat"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("expired") from None
        except jwt.PyJWTError:
            raise InvalidToken("invalid") from None
        try:
            claims = Claims(user_id=ObjectId(payload["sub"]), role=Role(payload["role"]))
            expires = float(payload["exp"])
        except (InvalidId, TypeError, ValueError):
            raise InvalidToken("invalid") from None
        self._verified[token] = (claims, expires)
        if len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return claims
