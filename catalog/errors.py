from enum import StrEnum

from bson import ObjectId

from core.errors import DomainError


class CatalogErrorCode(StrEnum):
    PRODUCT_NOT_FOUND = "PRODUCT_NOT_FOUND"
    STOCK_BELOW_COMMITTED = "STOCK_BELOW_COMMITTED"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"


class CatalogError(DomainError):
    """An expected outcome of a catalog operation, reported in the mutation's payload."""

    code: CatalogErrorCode


class ProductNotFound(CatalogError):
    def __init__(self, product_id: ObjectId, field: str = "id") -> None:
        super().__init__(CatalogErrorCode.PRODUCT_NOT_FOUND, f"no product {product_id}", field)
        self.product_id = product_id


class StockBelowCommitted(CatalogError):
    def __init__(self, requested: int, committed: int) -> None:
        super().__init__(
            CatalogErrorCode.STOCK_BELOW_COMMITTED,
            f"total stock {requested} is below the {committed} units already sold or held",
            "totalStock",
        )
        self.requested = requested
        self.committed = committed


class AdminKeyReused(CatalogError):
    def __init__(self, operation: str) -> None:
        super().__init__(
            CatalogErrorCode.IDEMPOTENCY_KEY_REUSED,
            f"this idempotency key was used for another {operation}; use a new key for a "
            "different request",
            "idempotencyKey",
        )
