from datetime import datetime

from pydantic import Field
from pymongo import IndexModel

from models.common import utcnow
from models.stored import ObjectIdField, Stored


class AdminRequest(Stored):
    """An admin write made with an idempotency key (createProduct, restock), recorded in the
    same transaction as the write: a retry with the key finds it and answers the first
    outcome instead of writing again. `_id` is the operation and the key."""

    id: str = Field(alias="_id")  # type: ignore[assignment]
    product_id: ObjectIdField
    fingerprint: str
    """What was asked (a digest of the input): the same key with another request is
    refused."""
    created_at: datetime = Field(default_factory=utcnow)

    class Settings:
        name = "admin_requests"
        indexes: list[IndexModel] = []  # by _id alone
