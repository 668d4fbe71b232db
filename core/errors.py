"""Errors shared by every domain package (a leaf module: it imports nothing of ours)."""


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
