"""CatalogService's reads of many products at once (what the API's product loader uses)."""

import asyncio
from decimal import Decimal

import pytest
from bson import ObjectId

from catalog.service import CatalogService
from catalog.validation import ProductDraft
from models import Database, Product
from services import Services


async def _created(catalog: CatalogService, name: str) -> ObjectId:
    product = await catalog.create(ProductDraft.parse(name=name, price=Decimal("1"), total_stock=3))
    assert product.id is not None
    return product.id


async def test_get_many_answers_those_that_exist_each_once(services: Services) -> None:
    catalog = CatalogService(services.database)
    first, second = await _created(catalog, "First"), await _created(catalog, "Second")
    missing = ObjectId()
    found = await catalog.get_many([second, missing, first, second])
    assert set(found) == {first, second}
    assert (found[first].name, found[second].name) == ("First", "Second")
    assert await catalog.get_many([]) == {}


async def test_get_many_serves_and_fills_the_same_cache_as_get(services: Services) -> None:
    catalog = CatalogService(services.database)
    product = await _created(catalog, "Cached")
    await catalog.get_many([product])
    # Changed behind the cache's back (as by another process): the cached copy answers.
    await Product.collection(services.database).update_one(
        {"_id": product}, {"$set": {"name": "New"}}
    )
    cached = await catalog.get(product)
    assert cached is not None
    assert cached.name == "Cached"
    assert (await catalog.get_many([product]))[product].name == "Cached"
    assert (await CatalogService(services.database).get_many([product]))[product].name == "New"


async def test_misses_at_once_share_one_read(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stampede of stock reads as the cache expires: one MongoDB read for all of them
    (each missed caller read the product itself before). One caller going away does not
    cancel the read the others wait for."""
    product = await _created(CatalogService(services.database), "Drop")
    catalog = CatalogService(services.database)  # nothing cached
    reads: list[ObjectId] = []
    real_get = Product.get

    async def counted(database: Database, product_id: ObjectId) -> Product | None:
        reads.append(product_id)
        return await real_get(database, product_id)

    monkeypatch.setattr(Product, "get", counted)
    impatient = asyncio.ensure_future(catalog.get(product))
    waiting = [asyncio.ensure_future(catalog.get(product)) for _ in range(100)]
    await asyncio.sleep(0)  # every caller has missed and is waiting
    impatient.cancel()
    found = await asyncio.gather(*waiting)

    assert reads == [product]
    assert {p.name for p in found if p is not None} == {"Drop"}
    assert None not in found
    assert (await catalog.get(product)) is found[0]  # cached, no further read
    assert reads == [product]


async def test_a_read_out_during_a_change_here_is_not_cached(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read that started before a change made through this catalog may have read the old
    product: it answers its callers, but is not remembered, so the next get reads again."""
    catalog = CatalogService(services.database)
    product = await _created(catalog, "Old")
    catalog = CatalogService(services.database)  # nothing cached
    read, release = asyncio.Event(), asyncio.Event()
    real_get = Product.get

    async def slow(database: Database, product_id: ObjectId) -> Product | None:
        found = await real_get(database, product_id)
        read.set()
        await release.wait()  # the change lands between the read and its answer
        return found

    monkeypatch.setattr(Product, "get", slow)
    before = asyncio.ensure_future(catalog.get(product))
    await read.wait()
    monkeypatch.setattr(Product, "get", real_get)
    await catalog.update(product, {"name": "New"})
    release.set()

    old = await before
    assert old is not None
    assert old.name == "Old"
    fresh = await catalog.get(product)
    assert fresh is not None
    assert fresh.name == "New"
