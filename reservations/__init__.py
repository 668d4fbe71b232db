"""The reservation engine: stock, holds, expiry, checkout and reconciliation.

Hot state lives in Redis and changes only through one Lua script per transition; MongoDB is
the system of record. This package does not know about HTTP or GraphQL.

What other packages use is exported here. Inside, one module per job:
- service.py: ReservationEngine, the facade every caller uses (and the hot path);
- checkout.py: the checkout saga (claim, order transaction, commit or unclaim; its queue);
- ledger.py: every MongoDB write of the checkout path (orders, reservations, rollups);
- loader.py: Redis loaded from MongoDB (missing products, rule changes);
- reads.py: the read models (counters, a hold, a customer's holds and orders);
- store.py: StockStore, the Redis boundary (one typed method per script, scripts.py, lua/);
- codec.py: the one codec for the Redis format; keys.py: its keys and channels;
- values.py, errors.py: the domain's values and errors;
- waiting_room.py: a product's waiting room (tickets, the draw, admissions);
- persister.py, reconcile.py, background.py, events.py, audit.py: the change-log
  persister, the repair of drift, the background loops, live events, the invariant audit.
"""

from reservations.audit import AuditReport, audit
from reservations.background import BackgroundTasks
from reservations.errors import (
    CheckoutInProgress,
    IdempotencyKeyReused,
    LimitPerCustomer,
    NotAdmitted,
    OutOfStock,
    ProductMissing,
    ReservationError,
    ReservationErrorCode,
    ReservationExpired,
    ReservationNotActive,
    ReservationNotFound,
    SaleNotActive,
    ServiceUnavailable,
    WaitingRoomClosed,
)
from reservations.events import (
    CATALOG_CHANNEL,
    EventHub,
    HoldChange,
    StockChange,
    customer_channel,
    stock_channel,
)
from reservations.persister import ChangeLogPersister
from reservations.service import ReservationEngine
from reservations.values import Hold, ReservationId, Sale, StockCounters
from reservations.waiting_room import Ticket, TicketState

__all__ = [
    "CATALOG_CHANNEL",
    "AuditReport",
    "BackgroundTasks",
    "ChangeLogPersister",
    "CheckoutInProgress",
    "EventHub",
    "Hold",
    "HoldChange",
    "IdempotencyKeyReused",
    "LimitPerCustomer",
    "NotAdmitted",
    "OutOfStock",
    "ProductMissing",
    "ReservationEngine",
    "ReservationError",
    "ReservationErrorCode",
    "ReservationExpired",
    "ReservationId",
    "ReservationNotActive",
    "ReservationNotFound",
    "Sale",
    "SaleNotActive",
    "ServiceUnavailable",
    "StockChange",
    "StockCounters",
    "Ticket",
    "TicketState",
    "WaitingRoomClosed",
    "audit",
    "customer_channel",
    "stock_channel",
]
