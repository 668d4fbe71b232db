"""JWT access tokens (HS256). A token carries the user id and role, so the hot path needs
no database read to know who is calling; a role change takes effect at the next login."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from bson import ObjectId
from bson.errors import InvalidId

from accounts.errors import InvalidToken
from models import Role

ALGORITHM = "HS256"


@dataclass(frozen=True)
class Claims:
    user_id: ObjectId
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


class TokenService:
    def __init__(self, secret: str, ttl_seconds: int) -> None:
        self._secret = secret
        self._ttl = timedelta(seconds=ttl_seconds)

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
        """The token's claims; raises InvalidToken("expired" | "invalid")."""
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
            return Claims(user_id=ObjectId(payload["sub"]), role=Role(payload["role"]))
        except (InvalidId, TypeError, ValueError):
            raise InvalidToken("invalid") from None
