"""Field permissions. Attached to fields (`permission_classes=[...]`), never called inside
resolvers. They raise coded errors: UNAUTHENTICATED without a valid token or for a user
deleted or disabled since (reason unknown_user / disabled), FORBIDDEN for a customer
asking for an admin operation."""

from typing import Any

from strawberry.permission import BasePermission
from strawberry.types import Info

from graphql_api.context import Context
from graphql_api.errors import forbidden


class IsAuthenticated(BasePermission):
    message = "sign in first"

    async def has_permission(self, source: Any, info: Info[Context, Any], **kwargs: Any) -> bool:
        await info.context.require_live_claims()
        return True


class IsAdmin(BasePermission):
    message = "this operation needs the ADMIN role"

    async def has_permission(self, source: Any, info: Info[Context, Any], **kwargs: Any) -> bool:
        if not (await info.context.require_live_claims()).is_admin:
            raise forbidden()
        return True
