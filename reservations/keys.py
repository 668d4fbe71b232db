"""Redis keys of one product. Every key carries the product's hash tag, so each script
touches one hash slot and runs unchanged on Redis Cluster."""

from dataclasses import dataclass

from bson import ObjectId

PREFIX = "fs"


@dataclass(frozen=True)
class ProductKeys:
    product_id: ObjectId

    @property
    def _tag(self) -> str:
        return f"{PREFIX}:{{{self.product_id}}}"

    @property
    def stock(self) -> str:
        return f"{self._tag}:stock"

    @property
    def holds(self) -> str:
        return f"{self._tag}:holds"

    @property
    def expiry(self) -> str:
        return f"{self._tag}:expiry"

    @property
    def claims(self) -> str:
        return f"{self._tag}:claims"

    @property
    def sold(self) -> str:
        """The sales Redis has counted: rid -> "quantity:customer" (one per order)."""
        return f"{self._tag}:sold"

    @property
    def customers(self) -> str:
        return f"{self._tag}:customers"

    @property
    def log(self) -> str:
        return f"{self._tag}:log"

    @property
    def events(self) -> str:
        """Pub/sub channel of stock changes (not a key; named alike for readability)."""
        return f"{self._tag}:events"

    @property
    def room(self) -> str:
        """The waiting room's counters: seq joined admits lapsed first burst started soldout."""
        return f"{self._tag}:room"

    @property
    def room_tickets(self) -> str:
        """The waiting room's tickets: customer id -> json (see lua/room_join.lua)."""
        return f"{self._tag}:room:tickets"

    @property
    def room_queue(self) -> str:
        """Who waits, by place: customer id -> score (a random draw in [0, 1) for those who
        joined before the start, 1 + arrival number after it)."""
        return f"{self._tag}:room:queue"

    @property
    def room_admitted(self) -> str:
        """Admissions not used yet: customer id -> deadline ms."""
        return f"{self._tag}:room:admitted"

    @property
    def room_log(self) -> str:
        """The waiting room's change log (a stream, read by reservations/room_recorder.py)."""
        return f"{self._tag}:room:log"

    @property
    def room_events(self) -> str:
        """Pub/sub channel of the waiting room's moves (not a key)."""
        return f"{self._tag}:room:events"

    def room_ticket_events(self, customer_id: ObjectId) -> str:
        """Pub/sub channel of one customer's ticket in this room (not a key): its joins."""
        return f"{self._tag}:room:events:{customer_id}"

    def idempotency(self, customer_id: ObjectId, key: str) -> str:
        return f"{self._tag}:idem:{customer_id}:{key}"


def customer_channel(customer_id: ObjectId) -> str:
    """Pub/sub channel of one customer's hold changes (not a key: no hash tag). The scripts
    build the same name from the product channel's prefix (tell_customer in
    lua/prelude.lua)."""
    return f"{PREFIX}:customer:{customer_id}:events"
