"""Business outcomes in mutation payloads: the one mapping from domain errors to `Problem`s.

A domain raises a `DomainError` (`OutOfStock(available)`, `EmailTaken(email)`...); a mutation
lists the errors its payload reports in `PayloadErrors`, and a resolver states only what it
does. Every other error (bad input, outages, bugs) goes on to `graphql_api.errors`.
"""

import dataclasses
from collections.abc import Awaitable, Callable
from enum import Enum
from itertools import chain
from typing import Any

import strawberry
from strawberry.extensions import FieldExtension
from strawberry.types import Info
from strawberry.types.field import StrawberryField

from accounts.errors import AccountErrorCode
from catalog.errors import CatalogErrorCode
from core.errors import DomainError
from reservations.errors import NotAdmitted, OutOfStock, ReservationErrorCode

# One GraphQL enum for every business outcome, built from the domains' own code enums.
_problem_codes: type[Enum] = Enum(  # type: ignore[misc]
    "ProblemCode",
    {
        code.name: code.value
        for code in chain(AccountErrorCode, CatalogErrorCode, ReservationErrorCode)
    },
)
ProblemCode = strawberry.enum(
    _problem_codes,
    description="Why a mutation did not do what was asked (nothing was changed).",
)


@strawberry.type(description="An expected business outcome that stopped a mutation.")
class Problem:
    code: ProblemCode  # type: ignore[valid-type]
    message: str
    field: str | None = strawberry.field(description="The input field at fault, if any.")
    available: int | None = strawberry.field(
        default=None, description="OUT_OF_STOCK: how many units are left."
    )
    position: int | None = strawberry.field(
        default=None, description="NOT_ADMITTED: your place in the waiting room's queue."
    )


def problem(error: DomainError) -> Problem:
    return Problem(
        code=ProblemCode(error.code.value),
        message=error.message,
        field=error.field,
        available=error.available if isinstance(error, OutOfStock) else None,
        position=error.position if isinstance(error, NotAdmitted) else None,
    )


class PayloadErrors(FieldExtension):
    """Reports the domain errors `reported` (and their subclasses) that the resolver raises
    as the payload's `errors`: the field's return type built with `errors=[problem]` and
    nothing else. Other errors pass on unchanged (`SERVICE_UNAVAILABLE` from the catalog is
    a GraphQL error, from the engine a payload error: each mutation lists what it reports).
    """

    def __init__(self, *reported: type[DomainError]) -> None:
        if not reported:
            raise TypeError("PayloadErrors needs the domain errors the payload reports")
        self.reported = reported
        self.payload: Callable[..., Any] | None = None

    def apply(self, field: StrawberryField) -> None:
        payload = field.type
        if not (
            isinstance(payload, type)
            and dataclasses.is_dataclass(payload)
            and "errors" in {f.name for f in dataclasses.fields(payload)}
        ):
            raise TypeError(f"{field.python_name}: PayloadErrors needs a payload with `errors`")
        if self.payload is not None and self.payload is not payload:
            raise TypeError(f"{field.python_name}: give each field a PayloadErrors of its own")
        self.payload = payload

    def _reported(self, error: DomainError) -> Any:
        assert self.payload is not None  # set by apply() when the schema is built
        return self.payload(errors=[problem(error)])

    def resolve(self, next_: Callable[..., Any], source: Any, info: Info, **kwargs: Any) -> Any:
        try:
            return next_(source, info, **kwargs)
        except self.reported as error:
            return self._reported(error)

    async def resolve_async(
        self, next_: Callable[..., Awaitable[Any]], source: Any, info: Info, **kwargs: Any
    ) -> Any:
        try:
            return await next_(source, info, **kwargs)
        except self.reported as error:
            return self._reported(error)
