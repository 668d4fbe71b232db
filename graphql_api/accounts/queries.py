import strawberry
from strawberry.types import Info

from graphql_api.accounts.types import User
from graphql_api.context import Context


@strawberry.type
class AccountQueries:
    @strawberry.field(description="The signed-in user; null when anonymous.")
    async def me(self, info: Info[Context, None]) -> User | None:
        if info.context.claims is None:
            return None
        return User.from_document(await info.context.current_user())
