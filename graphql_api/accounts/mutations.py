import strawberry
from strawberry.types import Info

from accounts.errors import AccountError
from accounts.service import Session
from graphql_api.accounts.limits import PerAccountLoginLimit
from graphql_api.accounts.types import AuthPayload, User
from graphql_api.context import Context
from graphql_api.problems import PayloadErrors


def _payload(session: Session) -> AuthPayload:
    return AuthPayload(token=session.token, user=User.from_document(session.user))


@strawberry.type
class AccountMutations:
    @strawberry.mutation(
        description="Create a customer account and sign in.",
        extensions=[PayloadErrors(AccountError)],
    )
    async def register(self, info: Info[Context, None], email: str, password: str) -> AuthPayload:
        return _payload(await info.context.services.accounts.register(email, password))

    @strawberry.mutation(
        description="Sign in; returns a bearer token.",
        extensions=[PayloadErrors(AccountError), PerAccountLoginLimit()],
    )
    async def login(self, info: Info[Context, None], email: str, password: str) -> AuthPayload:
        return _payload(await info.context.services.accounts.login(email, password))
