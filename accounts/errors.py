from enum import StrEnum

from core.errors import DomainError


class AccountErrorCode(StrEnum):
    EMAIL_TAKEN = "EMAIL_TAKEN"
    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"


class AccountError(DomainError):
    """An expected outcome of an account operation, reported in the mutation's payload."""

    code: AccountErrorCode


class EmailTaken(AccountError):
    def __init__(self, email: str) -> None:
        super().__init__(AccountErrorCode.EMAIL_TAKEN, f"{email} is already registered", "email")
        self.email = email


class InvalidCredentials(AccountError):
    def __init__(self) -> None:
        super().__init__(AccountErrorCode.INVALID_CREDENTIALS, "wrong e-mail or password")


class InvalidToken(Exception):
    """A bearer token that is malformed, forged or expired; `reason` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
