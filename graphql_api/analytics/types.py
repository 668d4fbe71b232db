from datetime import date, datetime

import strawberry
from strawberry.types import Info

from analytics import sales
from analytics.waiting_room import room_funnel
from catalog.validation import cents_to_price
from graphql_api.common import Money
from graphql_api.context import Context


def _money(cents: int | float) -> Money:
    return Money(cents_to_price(int(cents)))


@strawberry.type
class SalesTotals:
    revenue: Money
    units: int
    orders: int
    average_order_value: Money = strawberry.field(description="0.00 without orders.")


@strawberry.type
class ProductSales:
    product_id: strawberry.ID
    name: str | None = strawberry.field(description="null if the product was deleted.")
    revenue: Money
    units: int


@strawberry.type
class DaySales:
    day: date = strawberry.field(description="A UTC day.")
    revenue: Money
    units: int
    orders: int


@strawberry.type(description="Holds created in the range, by what became of them.")
class ReservationFunnel:
    created: int
    active: int
    completed: int
    expired: int
    cancelled: int
    conversion_rate: float = strawberry.field(description="completed / created; 0 if none.")


@strawberry.type(description="The waiting rooms' tickets that joined in the range.")
class WaitingRoomFunnel:
    joined: int
    admitted: int
    reserved: int = strawberry.field(description="Admitted, and reserved with their turn.")
    bought: int = strawberry.field(description="Reserved with their turn, then checked out.")
    abandoned: int = strawberry.field(description="Admitted, and let the turn lapse.")
    median_wait_seconds: float | None = strawberry.field(
        description="From joining (or the start, for those who joined before it) to the "
        "turn; null if nobody was admitted."
    )


@strawberry.type
class SalesStats:
    from_: datetime = strawberry.field(name="from")
    to: datetime
    totals: SalesTotals
    top_products: list[ProductSales] = strawberry.field(description="By revenue, highest first.")
    by_day: list[DaySales] = strawberry.field(
        description="Every UTC day the range touches, zeros included."
    )
    funnel: ReservationFunnel

    @strawberry.field(description="The waiting rooms' funnel (products with a room).")
    async def waiting_room(self, info: Info[Context, None]) -> WaitingRoomFunnel:
        funnel = await room_funnel(info.context.services.database, self.from_, self.to)
        return WaitingRoomFunnel(
            joined=funnel.joined,
            admitted=funnel.admitted,
            reserved=funnel.reserved,
            bought=funnel.bought,
            abandoned=funnel.abandoned,
            median_wait_seconds=funnel.median_wait_seconds,
        )

    @classmethod
    def from_stats(cls, stats: sales.SalesStats) -> "SalesStats":
        return cls(
            from_=stats.start,
            to=stats.end,
            totals=SalesTotals(
                revenue=_money(stats.totals.revenue_cents),
                units=stats.totals.units,
                orders=stats.totals.orders,
                average_order_value=Money(cents_to_price(int(stats.totals.average_order_cents))),
            ),
            top_products=[
                ProductSales(
                    product_id=strawberry.ID(str(p.product_id)),
                    name=p.name,
                    revenue=_money(p.revenue_cents),
                    units=p.units,
                )
                for p in stats.top_products
            ],
            by_day=[
                DaySales(day=d.day, revenue=_money(d.revenue_cents), units=d.units, orders=d.orders)
                for d in stats.by_day
            ],
            funnel=ReservationFunnel(
                created=stats.funnel.created,
                active=stats.funnel.active,
                completed=stats.funnel.completed,
                expired=stats.funnel.expired,
                cancelled=stats.funnel.cancelled,
                conversion_rate=round(stats.funnel.conversion_rate, 6),
            ),
        )
