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
        return await anyio.to_thread.run_sync(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        def check() -> bool:
            try:
                return self._hasher.verify(password_hash or self._decoy, password)
            except (VerificationError, InvalidHashError):
                return False

        matched = await anyio.to_thread.run_sync(check)  # always pay the cost, even for a decoy
        return matched and password_hash is not None
