"""Errors shared by every domain package (a leaf module: it imports nothing of ours)."""

from enum import StrEnum


class DomainError(Exception):
    """An expected business outcome (out of stock, e-mail taken...); nothing was changed.

    Each domain derives its own (`ReservationError`, `CatalogError`, `AccountError`), with
    its codes in a `str` enum of its own. The API reports these in the mutation's payload
    (`errors { code message field }`, `field` naming the input at fault as the API spells
    it), not as GraphQL errors: see graphql_api.problems.
    """

    code: StrEnum

    def __init__(self, code: StrEnum, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


class InvalidInput(ValueError):
    """Input that breaks a validation rule; nothing was changed.

    The API reports it as a GraphQL error with code BAD_USER_INPUT and the field's name.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class StoreUnreachable(Exception):
    """MongoDB or Redis refused or did not answer while the services were built. Its message
    is one line for the console and holds no credentials."""
