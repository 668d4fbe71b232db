"""Argon2id password hashing, off the event loop (a hash costs tens of milliseconds)."""

import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError


class Passwords:
    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        # Verified against when the e-mail is unknown, so a wrong e-mail takes as long as a
        # wrong password and response times do not reveal who has an account.
        self._decoy = self._hasher.hash("decoy password, never matches")

    async def hash(self, password: str) -> str:
        return await anyio.to_thread.run_sync(self._hasher.hash, _encoded(password))

    async def verify(self, password_hash: str | None, password: str) -> bool:
        def check() -> bool:
            try:
                return self._hasher.verify(password_hash or self._decoy, _encoded(password))
            except (VerificationError, InvalidHashError):
                return False

        matched = await anyio.to_thread.run_sync(check)  # always pay the cost, even for a decoy
        return matched and password_hash is not None


def _encoded(password: str) -> bytes:
    """UTF-8, as argon2 encodes a str itself, except that a lone surrogate (which JSON can
    carry) is kept rather than raising: a login with one is a wrong password, not a crash.
    Registration refuses such passwords before they are hashed."""
    return password.encode("utf-8", "surrogatepass")
