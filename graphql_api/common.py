"""Types and helpers shared by every domain of the schema."""

import base64
import binascii
import re
from decimal import Decimal
from typing import NewType

import strawberry
from bson import ObjectId
from bson.errors import InvalidId

from core.errors import InvalidInput


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
