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

    def idempotency(self, customer_id: ObjectId, key: str) -> str:
        return f"{self._tag}:idem:{customer_id}:{key}"


def customer_channel(customer_id: ObjectId) -> str:
    """Pub/sub channel of one customer's hold changes (not a key: no hash tag). The scripts
    build the same name from the product channel's prefix (tell_customer in
    lua/prelude.lua)."""
    return f"{PREFIX}:customer:{customer_id}:events"
