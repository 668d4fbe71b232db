"""The per-account limit on login, as a field extension (the per-address limit in front of
it, graphql_api.ratelimit, does not stop guesses spread over many addresses)."""

from collections.abc import Awaitable, Callable
from typing import Any

from strawberry.extensions import FieldExtension
from strawberry.types import Info

from accounts.service import login_key
from graphql_api.context import Context
from graphql_api.guards import count_or_refuse

WINDOW = "login"


class PerAccountLoginLimit(FieldExtension):
    """At most RATE_LIMIT_LOGIN_PER_EMAIL logins for one e-mail address (normalised) in any
    window of that length, from whatever client address. Every attempt counts, whether or
    not the address has an account and whether or not the password was right, and a
    refused attempt is refused before the password is looked at: RATE_LIMITED with
    retryAfter, the same answer after the same work for an account and for no account.
    Without Redis, logins are refused (as every write is)."""

    def resolve(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("PerAccountLoginLimit guards async resolvers only")

    async def resolve_async(
        self,
        next_: Callable[..., Awaitable[Any]],
        source: Any,
        info: Info[Context, Any],
        **kwargs: Any,
    ) -> Any:
        services = info.context.services
        limits = services.rate_limits
        if limits.enabled:
            window = limits.window(WINDOW, services.settings.rate_limit_login_per_email)
            await count_or_refuse(
                window, login_key(kwargs["email"]), WINDOW, "logins for this e-mail address"
            )
        return await next_(source, info, **kwargs)
