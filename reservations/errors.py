from enum import StrEnum

from bson import ObjectId

from catalog.errors import ProductNotFound
from core.errors import DomainError
from models import ReservationStatus


class ReservationErrorCode(StrEnum):
    OUT_OF_STOCK = "OUT_OF_STOCK"
    LIMIT_PER_CUSTOMER = "LIMIT_PER_CUSTOMER"
    SALE_NOT_ACTIVE = "SALE_NOT_ACTIVE"
    RESERVATION_NOT_FOUND = "RESERVATION_NOT_FOUND"
    RESERVATION_EXPIRED = "RESERVATION_EXPIRED"
    RESERVATION_NOT_ACTIVE = "RESERVATION_NOT_ACTIVE"
    CHECKOUT_IN_PROGRESS = "CHECKOUT_IN_PROGRESS"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    NOT_ADMITTED = "NOT_ADMITTED"
    WAITING_ROOM_CLOSED = "WAITING_ROOM_CLOSED"


class ReservationError(DomainError):
    """An expected outcome of a reservation operation; nothing was changed."""

    code: ReservationErrorCode


class OutOfStock(ReservationError):
    def __init__(self, available: int) -> None:
        super().__init__(ReservationErrorCode.OUT_OF_STOCK, f"only {available} left", "quantity")
        self.available = available


class LimitPerCustomer(ReservationError):
    def __init__(self, limit: int, already: int) -> None:
        super().__init__(
            ReservationErrorCode.LIMIT_PER_CUSTOMER,
            f"at most {limit} per customer; you already hold or bought {already}",
            "quantity",
        )


class SaleNotActive(ReservationError):
    def __init__(self) -> None:
        super().__init__(ReservationErrorCode.SALE_NOT_ACTIVE, "the sale is not open now")


class ReservationNotFound(ReservationError):
    def __init__(self, reservation: object) -> None:
        super().__init__(
            ReservationErrorCode.RESERVATION_NOT_FOUND,
            f"no reservation {reservation}",
            "reservationId",
        )


class ReservationExpired(ReservationError):
    def __init__(self) -> None:
        super().__init__(ReservationErrorCode.RESERVATION_EXPIRED, "the hold has expired")


class ReservationNotActive(ReservationError):
    def __init__(self, status: str) -> None:
        super().__init__(
            ReservationErrorCode.RESERVATION_NOT_ACTIVE, f"the reservation is {status}"
        )
        self.status = status


class CheckoutInProgress(ReservationError):
    def __init__(self) -> None:
        super().__init__(
            ReservationErrorCode.CHECKOUT_IN_PROGRESS,
            "a checkout of this reservation is in progress",
        )


class ServiceUnavailable(ReservationError):
    def __init__(self, what: str) -> None:
        super().__init__(
            ReservationErrorCode.SERVICE_UNAVAILABLE, f"{what} is unavailable: try again"
        )


class IdempotencyKeyReused(ReservationError):
    def __init__(self, quantity: int) -> None:
        super().__init__(
            ReservationErrorCode.IDEMPOTENCY_KEY_REUSED,
            f"this idempotency key was used for a reservation of {quantity}; use a new key "
            "for a different request",
            "idempotencyKey",
        )


class NotAdmitted(ReservationError):
    """The product's waiting room is on and the caller holds no valid admission."""

    def __init__(self, position: int | None) -> None:
        where = f"you are number {position} in the queue" if position else "join it first"
        super().__init__(
            ReservationErrorCode.NOT_ADMITTED,
            f"this sale has a waiting room: {where}, and reserve once admitted",
        )
        self.position = position


class WaitingRoomClosed(ReservationError):
    """No joining now: the product has no waiting room, it opens later, or the sale ended."""

    def __init__(self, why: str) -> None:
        super().__init__(ReservationErrorCode.WAITING_ROOM_CLOSED, why, "productId")


def not_active(status: ReservationStatus | str) -> ReservationError:
    """The refusal for a hold that has ended: RESERVATION_EXPIRED if it expired, else
    RESERVATION_NOT_ACTIVE with its status."""
    if ReservationStatus(status) is ReservationStatus.EXPIRED:
        return ReservationExpired()
    return ReservationNotActive(ReservationStatus(status).value)


class ProductMissing(ProductNotFound):
    """The engine found no such product: the catalog's PRODUCT_NOT_FOUND, so the API
    reports it as the catalog's own error, naming the argument the engine's operations
    take it by (`reserve(productId:)`)."""

    def __init__(self, product_id: ObjectId) -> None:
        super().__init__(product_id, "productId")
