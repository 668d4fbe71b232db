from enum import StrEnum


class AccountErrorCode(StrEnum):
    EMAIL_TAKEN = "EMAIL_TAKEN"
    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"


class AccountError(Exception):
    """An expected outcome of an account operation, reported in the mutation's payload."""

    def __init__(self, code: AccountErrorCode, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


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
