"""Types and helpers shared by every domain of the schema."""

import base64
import binascii
import re
from decimal import Decimal
from enum import Enum
from itertools import chain
from typing import NewType

import strawberry
from bson import ObjectId
from bson.errors import InvalidId

from accounts.errors import AccountError, AccountErrorCode
from catalog.errors import CatalogError, CatalogErrorCode
from core.errors import InvalidInput
from reservations.errors import ReservationError, ReservationErrorCode

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


def problem(error: AccountError | CatalogError | ReservationError) -> Problem:
    return Problem(
        code=ProblemCode(error.code.value),
        message=error.message,
        field=error.field,
        available=getattr(error, "available", None),
    )


def parse_id(raw: strawberry.ID | str, field: str = "id") -> ObjectId:
    try:
        return ObjectId(str(raw))
    except (InvalidId, TypeError):
        raise InvalidInput(field, "is not a valid id") from None


_MONEY = re.compile(r"^-?\d{1,16}(\.\d{1,16})?$")


def _parse_money(value: object) -> Decimal:
    # Strings only: a JSON number may already have been rounded by the client's floats.
    if not isinstance(value, str) or not _MONEY.match(value):
        raise ValueError('money must be a decimal string such as "19.99"')
    return Decimal(value)


Money = NewType("Money", Decimal)
MONEY_SCALAR = strawberry.scalar(
    name="Money",
    description='An exact amount of money as a decimal string, e.g. "19.99".',
    serialize=str,
    parse_value=_parse_money,
)

_CURSOR_PREFIX = b"cursor:"


def encode_cursor(object_id: ObjectId) -> str:
    return base64.urlsafe_b64encode(_CURSOR_PREFIX + object_id.binary).decode()


def decode_cursor(cursor: str, field: str = "after") -> ObjectId:
    try:
        raw = base64.urlsafe_b64decode(cursor.encode())
    except (binascii.Error, ValueError):
        raw = b""
    if not raw.startswith(_CURSOR_PREFIX) or len(raw) != len(_CURSOR_PREFIX) + 12:
        raise InvalidInput(field, "is not a cursor from this API")
    return ObjectId(raw[len(_CURSOR_PREFIX) :])


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None
