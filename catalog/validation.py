"""Rules for product fields. Pure functions: they raise InvalidInput naming the field."""

import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from core.errors import InvalidInput
from models import WaitingRoomRule

NAME_MAX = 200
DESCRIPTION_MAX = 5_000
PRICE_MAX = Decimal("1000000.00")
STOCK_MAX = 1_000_000
PER_CUSTOMER_MAX = 1_000
HOLD_SECONDS_MIN, HOLD_SECONDS_MAX = 5, 86_400
DEFAULT_MAX_PER_CUSTOMER = 5
ROOM_OPENS_BEFORE_MAX = 7 * 86_400
ROOM_ADMISSION_SECONDS_MIN, ROOM_ADMISSION_SECONDS_MAX = 5, 3_600
ROOM_OVERSUBSCRIPTION_MIN, ROOM_OVERSUBSCRIPTION_MAX = Decimal("1"), Decimal("10")


def price_to_cents(price: Decimal, field: str = "price") -> int:
    """Exact conversion of a decimal amount to integer cents (no floats anywhere)."""
    if not price.is_finite():
        raise InvalidInput(field, "must be a finite amount")
    if price < 0:
        raise InvalidInput(field, "must not be negative")
    if price > PRICE_MAX:
        raise InvalidInput(field, f"must be at most {PRICE_MAX}")
    if price != price.quantize(Decimal("0.01")):
        raise InvalidInput(field, "must have at most two decimal places")
    return int(price * 100)


def cents_to_price(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(Decimal("0.01"))


def check_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise InvalidInput("name", "must not be empty")
    if len(name) > NAME_MAX:
        raise InvalidInput("name", f"must be at most {NAME_MAX} characters")
    if _controls(name):
        raise InvalidInput("name", "must not contain control characters (NUL, newline, tab, ...)")
    return name


def check_description(description: str) -> str:
    if len(description) > DESCRIPTION_MAX:
        raise InvalidInput("description", f"must be at most {DESCRIPTION_MAX} characters")
    if _controls(description, allowed="\n\t"):
        raise InvalidInput("description", "must not contain control characters but newline and tab")
    return description.strip()


def _controls(text: str, allowed: str = "") -> bool:
    """Whether `text` holds a control character (Unicode Cc: NUL, DEL, the C1 range...)
    other than those `allowed`: invisible on a page and mangled by terminals and logs."""
    return any(unicodedata.category(c) == "Cc" and c not in allowed for c in text)


def check_range(field: str, value: int, low: int, high: int) -> int:
    if not low <= value <= high:
        raise InvalidInput(field, f"must be between {low} and {high}")
    return value


def check_instant(field: str, value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.utcoffset() is None:
        raise InvalidInput(field, "must include a time zone (e.g. 2026-11-27T09:00:00Z)")
    try:
        value.astimezone(UTC)  # as MongoDB stores it
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is in year 0 in UTC
        raise InvalidInput(field, "must be from 0001-01-01 to 9999-12-31 in UTC") from None
    return value


def check_window(starts_at: datetime | None, ends_at: datetime | None) -> None:
    if starts_at is not None and ends_at is not None and ends_at <= starts_at:
        raise InvalidInput("saleEndsAt", "must be after saleStartsAt")


def waiting_room_rule(
    *,
    enabled: bool,
    opens_before_seconds: int,
    admission_seconds: int,
    oversubscription: Decimal,
    field: str = "waitingRoom",
) -> WaitingRoomRule:
    """A waiting room's settings, checked: oversubscription is a factor with at most two
    decimals (1.5: admit up to 1.5 shoppers per unit available), kept as a percentage."""
    check_range(f"{field}.opensBeforeSeconds", opens_before_seconds, 0, ROOM_OPENS_BEFORE_MAX)
    check_range(
        f"{field}.admissionSeconds",
        admission_seconds,
        ROOM_ADMISSION_SECONDS_MIN,
        ROOM_ADMISSION_SECONDS_MAX,
    )
    factor = Decimal(oversubscription)
    if not (
        factor.is_finite()
        and ROOM_OVERSUBSCRIPTION_MIN <= factor <= ROOM_OVERSUBSCRIPTION_MAX
        and factor == factor.quantize(Decimal("0.01"))
    ):
        raise InvalidInput(
            f"{field}.oversubscription",
            f"must be between {ROOM_OVERSUBSCRIPTION_MIN} and {ROOM_OVERSUBSCRIPTION_MAX}, "
            "with at most two decimals",
        )
    return WaitingRoomRule(
        enabled=enabled,
        opens_before_seconds=opens_before_seconds,
        admission_seconds=admission_seconds,
        oversubscription_percent=int(factor * 100),
    )


@dataclass(frozen=True)
class ProductDraft:
    """Validated fields of a new product."""

    name: str
    description: str
    price_cents: int
    total_stock: int
    max_per_customer: int
    hold_seconds: int | None
    sale_starts_at: datetime | None
    sale_ends_at: datetime | None
    waiting_room: WaitingRoomRule | None = None

    @classmethod
    def parse(
        cls,
        *,
        name: str,
        price: Decimal,
        total_stock: int,
        description: str = "",
        max_per_customer: int | None = None,
        hold_seconds: int | None = None,
        sale_starts_at: datetime | None = None,
        sale_ends_at: datetime | None = None,
        waiting_room: WaitingRoomRule | None = None,
    ) -> "ProductDraft":
        starts = check_instant("saleStartsAt", sale_starts_at)
        ends = check_instant("saleEndsAt", sale_ends_at)
        check_window(starts, ends)
        return cls(
            name=check_name(name),
            description=check_description(description),
            price_cents=price_to_cents(price),
            total_stock=check_range("totalStock", total_stock, 0, STOCK_MAX),
            max_per_customer=check_range(
                "maxPerCustomer",
                DEFAULT_MAX_PER_CUSTOMER if max_per_customer is None else max_per_customer,
                1,
                PER_CUSTOMER_MAX,
            ),
            hold_seconds=None
            if hold_seconds is None
            else check_range("holdSeconds", hold_seconds, HOLD_SECONDS_MIN, HOLD_SECONDS_MAX),
            sale_starts_at=starts,
            sale_ends_at=ends,
            waiting_room=waiting_room,
        )
