"""Per-request context: who is calling (from the bearer token) and the services."""

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from bson import ObjectId
from starlette.requests import HTTPConnection

from accounts.errors import InvalidToken
from accounts.tokens import Claims
from graphql_api.client_address import rate_key, remembered
from graphql_api.errors import unauthenticated
from models import User
from services import Services

if TYPE_CHECKING:
    from graphql_api.loaders import Loaders


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header; "" when malformed."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else ""


@dataclass
class Context:
    services: Services
    connection: HTTPConnection | None
    authorization: str | None
    connection_params: dict[str, object] | None = None
    """graphql-transport-ws: the `connection_init` payload."""
    _user: User | None = field(default=None, repr=False)

    @cached_property
    def loaders(self) -> "Loaders":
        """Batch loaders for what lists read per item: one set per context."""
        # Imported here: the loaders build the schema's types, whose resolvers name Context.
        from graphql_api.loaders import Loaders

        return Loaders.of(self.services)

    @cached_property
    def _claims(self) -> Claims | InvalidToken | None:
        token = bearer_token(self.authorization)
        if token is None:
            return None
        try:
            return self.services.accounts.tokens.decode(token)
        except InvalidToken as exc:
            return exc

    @property
    def claims(self) -> Claims | None:
        """The caller's claims, None when anonymous; a bad token raises UNAUTHENTICATED
        (a client that sends a token expects to be someone, so it is never ignored)."""
        claims = self._claims
        if isinstance(claims, InvalidToken):
            raise unauthenticated(claims.reason)
        return claims

    def valid_claims(self) -> Claims | None:
        """The caller's claims when its token is valid; None when anonymous or not."""
        claims = self._claims
        return claims if isinstance(claims, Claims) else None

    def rate_identity(self) -> str:
        """Whom budgets are kept for: the signed-in user, else the client's network."""
        claims = self._claims
        if isinstance(claims, Claims):
            return f"user:{claims.user_id}"
        address = remembered(self.connection.scope) if self.connection else "unknown"
        return f"ip:{rate_key(address)}"

    def require_claims(self) -> Claims:
        claims = self.claims
        if claims is None:
            raise unauthenticated()
        return claims

    async def require_live_claims(self) -> Claims:
        """`require_claims`, and the user still exists and is not disabled (checked at most
        every few seconds per user: see accounts.liveness)."""
        claims = self.require_claims()
        refusal = await self.services.accounts.liveness.refusal(claims.user_id)
        if refusal is not None:
            raise unauthenticated(refusal)
        return claims

    def owner_scope(self) -> ObjectId | None:
        """Whose reservations the caller may see or act on: their own, or (None) anyone's
        for an admin."""
        claims = self.require_claims()
        return None if claims.is_admin else claims.user_id

    async def current_user(self) -> User:
        if self._user is None:
            user = await self.services.accounts.get(self.require_claims().user_id)
            if user is None:
                raise unauthenticated("unknown_user")
            if user.disabled:
                raise unauthenticated("disabled")
            self._user = user
        return self._user
