from datetime import datetime

import strawberry

from graphql_api.problems import Problem
from models import Role as RoleValue
from models import User as UserDocument

strawberry.enum(RoleValue, name="Role")  # registers the model enum as a GraphQL enum


@strawberry.type
class User:
    id: strawberry.ID
    email: str
    role: RoleValue
    created_at: datetime

    @classmethod
    def from_document(cls, user: UserDocument) -> "User":
        return cls(
            id=strawberry.ID(str(user.id)),
            email=user.email,
            role=user.role,
            created_at=user.created_at,
        )


@strawberry.type(description="A signed-in session: send the token as `Authorization: Bearer`.")
class AuthPayload:
    token: str | None = None
    user: User | None = None
    errors: list[Problem] = strawberry.field(default_factory=list)
