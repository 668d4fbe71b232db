"""Batch loaders: what a list of items reads for each item is read once for all of them.

One `Loaders` per context (`Context.loaders`), so per HTTP request. A WebSocket's operations
share their socket's context, so the loaders keep nothing between batches (`cache=False`:
a product's counters read for one operation are never served to a later one); within a
batch, each key is read once.
"""

from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import TypeVar

from bson import ObjectId
from strawberry.dataloader import DataLoader

from graphql_api.catalog.types import Product, live_products
from services import Services

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def _batched(read: Callable[[list[K]], Awaitable[dict[K, V]]]) -> DataLoader[K, V | None]:
    """A loader calling `read` once per batch with each key once; a key it leaves out of
    its answer loads as None."""

    async def load(keys: list[K]) -> list[V | None]:
        found = await read(list(dict.fromkeys(keys)))
        return [found.get(key) for key in keys]

    return DataLoader(load_fn=load, cache=False)


@dataclass(frozen=True)
class Loaders:
    product: DataLoader[ObjectId, Product | None]
    """Products by id with their live counters: one MongoDB query (`$in`, through the
    catalog's short cache) and one Redis round trip per batch."""

    @classmethod
    def of(cls, services: Services) -> "Loaders":
        async def products(ids: list[ObjectId]) -> dict[ObjectId, Product]:
            documents = await services.catalog.get_many(ids)
            live = await live_products(services.engine, list(documents.values()))
            return dict(zip(documents, live, strict=True))

        return cls(product=_batched(products))
