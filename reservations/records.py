"""How MongoDB records the engine's values: a hold's reservation document and a sale's
order, built from the typed documents of `models`, and the values read back from them. The
one owner of that format, as reservations/codec.py is of Redis's: the ledger writes these
documents, the reads and the reconciler read them, nobody spells their fields by hand."""

from typing import Any

from models import Order, Reservation, ReservationStatus
from reservations.values import Hold, ReservationId, Sale


def reservation_document(hold: Hold) -> dict[str, Any]:
    """The hold's reservation document, as it is now."""
    return Reservation(
        id=hold.id.hold_id,
        product_id=hold.product_id,
        customer_id=hold.customer_id,
        quantity=hold.quantity,
        status=hold.status,
        idempotency_key=hold.idempotency_key,
        created_at=hold.created_at,
        expires_at=hold.expires_at,
        ended_at=hold.ended_at,
    ).to_mongo()


def inserted_fields(hold: Hold, *, without: tuple[str, ...] = ()) -> dict[str, Any]:
    """The hold's document for an upsert's `$setOnInsert` (the filter gives its `_id`),
    less the fields the same update sets otherwise."""
    document = reservation_document(hold)
    for field in ("_id", *without):
        del document[field]
    return document


def order_document(sale: Sale) -> dict[str, Any]:
    """The sale's order document."""
    hold = sale.hold
    return Order(
        id=sale.order_id,
        reservation_id=hold.id.hold_id,
        product_id=hold.product_id,
        customer_id=hold.customer_id,
        quantity=hold.quantity,
        unit_price_cents=sale.unit_price_cents,
        total_cents=sale.total_cents,
        created_at=sale.created_at,
    ).to_mongo()


def hold_from_document(document: dict[str, Any]) -> Hold:
    """A hold from its reservation document."""
    reservation = Reservation.from_mongo(document)
    return Hold(
        id=ReservationId(reservation.product_id, reservation.id),
        customer_id=reservation.customer_id,
        quantity=reservation.quantity,
        status=reservation.status,
        created_at=reservation.created_at,
        expires_at=reservation.expires_at,
        idempotency_key=reservation.idempotency_key,
        ended_at=reservation.ended_at,
    )


def sale_from_documents(order: dict[str, Any], reservation: dict[str, Any] | None) -> Sale:
    """A sale from its order and, if MongoDB has it, its reservation document."""
    recorded = Order.from_mongo(order)
    hold = (
        hold_from_document(reservation)
        if reservation
        else Hold(
            id=ReservationId(recorded.product_id, recorded.reservation_id),
            customer_id=recorded.customer_id,
            quantity=recorded.quantity,
            status=ReservationStatus.COMPLETED,
            created_at=recorded.created_at,
            expires_at=recorded.created_at,
        )
    )
    return Sale(
        recorded.id, hold, recorded.unit_price_cents, recorded.total_cents, recorded.created_at
    )
