"""The one mapping from domain errors to payload errors (graphql_api.problems), on a schema
of its own: what a mutation reports, what it lets through, and what it refuses to build."""

from typing import Any

import pytest
import strawberry
from bson import ObjectId

from catalog.errors import CatalogError
from core.errors import DomainError
from graphql_api.problems import PayloadErrors, Problem
from reservations.errors import (
    OutOfStock,
    ProductMissing,
    ReservationError,
    SaleNotActive,
    ServiceUnavailable,
)

PRODUCT = ObjectId()
RAISED: dict[str, DomainError] = {
    "outOfStock": OutOfStock(3),
    "saleNotActive": SaleNotActive(),
    "productMissing": ProductMissing(PRODUCT),
    "unavailable": ServiceUnavailable("Redis"),
}


@strawberry.type
class Payload:
    done: bool | None = None
    errors: list[Problem] = strawberry.field(default_factory=list)


@strawberry.type
class Query:
    ok: bool = True


@strawberry.type
class Mutation:
    @strawberry.mutation(extensions=[PayloadErrors(ReservationError, ProductMissing)])
    async def engine(self, raised: str | None = None) -> Payload:
        if raised is not None:
            raise RAISED[raised]
        return Payload(done=True)

    @strawberry.mutation(extensions=[PayloadErrors(CatalogError)])
    def catalog(self, raised: str) -> Payload:
        raise RAISED[raised]


SCHEMA = strawberry.Schema(query=Query, mutation=Mutation)
ENGINE = (
    "mutation($r: String) { engine(raised: $r) { done errors { code message field available } } }"
)
CATALOG = "mutation($r: String!) { catalog(raised: $r) { done errors { code field } } }"


async def _run(query: str, raised: str | None) -> tuple[Any, list[str]]:
    result = await SCHEMA.execute(query, variable_values={"r": raised})
    return result.data, [error.message for error in result.errors or []]


async def test_a_reported_error_is_the_payload_s_errors_and_nothing_else() -> None:
    data, errors = await _run(ENGINE, "outOfStock")
    assert errors == []
    assert data == {
        "engine": {
            "done": None,
            "errors": [
                {
                    "code": "OUT_OF_STOCK",
                    "message": "only 3 left",
                    "field": "quantity",
                    "available": 3,
                }
            ],
        }
    }
    data, _ = await _run(ENGINE, "saleNotActive")
    assert data["engine"]["errors"] == [
        {
            "code": "SALE_NOT_ACTIVE",
            "message": "the sale is not open now",
            "field": None,
            "available": None,
        }
    ]
    data, _ = await _run(ENGINE, None)
    assert data == {"engine": {"done": True, "errors": []}}


async def test_the_engine_s_missing_product_is_the_catalog_s_product_not_found() -> None:
    data, errors = await _run(ENGINE, "productMissing")
    assert errors == []
    assert data["engine"]["errors"] == [
        {
            "code": "PRODUCT_NOT_FOUND",
            "message": f"no product {PRODUCT}",
            "field": "productId",
            "available": None,
        }
    ]


async def test_a_domain_error_the_field_does_not_report_stays_a_graphql_error() -> None:
    # The catalog reports its own outcomes only: Redis out of reach is SERVICE_UNAVAILABLE
    # for the whole field (graphql_api.errors gives it its code), not a payload error.
    data, errors = await _run(CATALOG, "unavailable")
    assert data is None
    assert errors == ["Redis is unavailable: try again"]
    data, errors = await _run(CATALOG, "productMissing")  # a CatalogError: reported
    assert errors == []
    assert data["catalog"]["errors"] == [{"code": "PRODUCT_NOT_FOUND", "field": "productId"}]


def test_a_field_without_errors_in_its_type_is_refused_when_the_schema_is_built() -> None:
    @strawberry.type
    class NoErrors:
        done: bool

    @strawberry.type
    class Wrong:
        @strawberry.mutation(extensions=[PayloadErrors(ReservationError)])
        def wrong(self) -> NoErrors:
            return NoErrors(done=True)

    with pytest.raises(TypeError, match="payload with `errors`"):
        strawberry.Schema(query=Query, mutation=Wrong)


def test_one_extension_instance_is_not_shared_by_fields_of_two_payloads() -> None:
    shared = PayloadErrors(ReservationError)

    @strawberry.type
    class Other:
        errors: list[Problem] = strawberry.field(default_factory=list)

    @strawberry.type
    class Sharing:
        @strawberry.mutation(extensions=[shared])
        def first(self) -> Payload:
            return Payload()

        @strawberry.mutation(extensions=[shared])
        def second(self) -> Other:
            return Other()

    with pytest.raises(TypeError, match="of its own"):
        strawberry.Schema(query=Query, mutation=Sharing)
