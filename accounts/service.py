"""Accounts: register, log in, look users up. Passwords are hashed with Argon2id."""

import hashlib
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from bson import ObjectId
from email_validator import EmailNotValidError, validate_email
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from accounts.errors import EmailTaken, InvalidCredentials
from accounts.liveness import Liveness
from accounts.password_rules import check_password, common_passwords
from accounts.passwords import Passwords
from accounts.tokens import TokenService
from core.errors import InvalidInput
from models import Role, User

EMAIL_MAX = 254


@dataclass(frozen=True)
class Session:
    user: User
    token: str


def normalize_email(raw: str) -> str:
    if len(raw) > EMAIL_MAX:
        raise InvalidInput("email", f"must be at most {EMAIL_MAX} characters")
    try:
        return validate_email(raw.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise InvalidInput("email", str(exc)) from None


def login_key(email: str) -> str:
    """Whom the per-account login limit counts: the e-mail as login looks it up (normalised,
    so `Ann@Example.com ` and `ann@example.com` share one count), or, for text that is no
    address, that text trimmed and in lower case. Hashed, so that no address is kept in
    Redis and a key stays short whatever was sent. It depends on nothing but the text: an
    address with an account and one without are counted alike."""
    try:
        address = normalize_email(email)
    except InvalidInput:
        address = email.strip().lower()
    return hashlib.sha256(address.encode("utf-8", "surrogatepass")).hexdigest()


class AccountService:
    def __init__(
        self, database: AsyncDatabase[dict[str, Any]], tokens: TokenService, passwords: Passwords
    ) -> None:
        self._database = database
        self._users = User.collection(database)
        self.tokens = tokens
        self._passwords = passwords
        self.liveness = Liveness(self._disabled)
        common_passwords()  # read the list now rather than during the first registration

    async def _disabled(self, user_ids: Collection[ObjectId]) -> dict[ObjectId, bool]:
        """For those of these users that exist, whether each is disabled."""
        found = self._users.find({"_id": {"$in": list(user_ids)}}, projection={"disabled": 1})
        return {user["_id"]: bool(user.get("disabled", False)) async for user in found}

    async def register(self, email: str, password: str, role: Role = Role.CUSTOMER) -> Session:
        """Create a user and log it in. Raises InvalidInput (a malformed e-mail, or a
        password that breaks accounts.password_rules), or EmailTaken (also when two
        registrations of one address race: the unique index decides)."""
        address = normalize_email(email)
        check_password(password)
        user = User(email=address, password_hash=await self._passwords.hash(password), role=role)
        try:
            await user.insert(self._database)
        except DuplicateKeyError:
            raise EmailTaken(address) from None
        return self._session(user)

    async def login(self, email: str, password: str) -> Session:
        """Raises InvalidCredentials for an unknown e-mail, a disabled user or a wrong
        password alike, after the same work: one lookup and one Argon2 verification (against
        a decoy hash when no user has the address). A malformed address skips the lookup;
        it cannot have an account, so that reveals nothing."""
        try:
            address = normalize_email(email)
        except InvalidInput:
            address = None
        user = await self._by_email(address) if address else None
        if not await self._passwords.verify(user.password_hash if user else None, password):
            raise InvalidCredentials()
        assert user is not None
        if user.disabled:
            raise InvalidCredentials()
        return self._session(user)

    async def get(self, user_id: ObjectId) -> User | None:
        return await User.get(self._database, user_id)

    async def _by_email(self, address: str) -> User | None:
        return await User.find_one(self._database, {"email": address})

    async def set_disabled(self, email: str, disabled: bool) -> User | None:
        """Disable (or enable again) a user; its tokens stop (or start) working within
        accounts.liveness.CHECK_SECONDS on every process. None if there is no such user."""
        document = await self._users.find_one_and_update(
            {"email": normalize_email(email)},
            {"$set": {"disabled": disabled}},
            return_document=ReturnDocument.AFTER,
        )
        if document is None:
            return None
        user = User.from_mongo(document)
        self.liveness.forget(user.id)
        return user

    async def ensure_user(self, email: str, password: str, role: Role) -> tuple[User, bool]:
        """The user with this e-mail, created if missing (idempotent; used by the seed).
        Returns (user, created)."""
        try:
            return (await self.register(email, password, role)).user, True
        except EmailTaken:
            user = await self._by_email(normalize_email(email))
            assert user is not None
            return user, False

    def _session(self, user: User) -> Session:
        return Session(user=user, token=self.tokens.issue(user.id, user.role))
