"""CatalogService's reads of many products at once (what the API's product loader uses)."""

from decimal import Decimal

from bson import ObjectId

from catalog.service import CatalogService
from catalog.validation import ProductDraft
from models import Product
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
