from datetime import UTC, datetime
from typing import Annotated

import strawberry
from strawberry.types import Info

from analytics.sales import sales_stats
from core.errors import InvalidInput
from graphql_api.analytics.types import SalesStats
from graphql_api.context import Context
from graphql_api.permissions import IsAdmin

# The range is cut into UTC days, and the day after the last one must exist too.
EARLIEST = datetime.min.replace(tzinfo=UTC)
LATEST = datetime(9999, 12, 31, tzinfo=UTC)


def _within_the_calendar(field: str, moment: datetime) -> None:
    # Naive datetimes are refused by the range check, which says why.
    if moment.tzinfo is not None and not EARLIEST <= moment <= LATEST:
        raise InvalidInput(field, "must be from 0001-01-01 to 9999-12-31T00:00:00Z, in UTC")


@strawberry.type
class AnalyticsQueries:
    @strawberry.field(
        permission_classes=[IsAdmin],
        description="Sales from `from` (included) to `to` (excluded), at most 366 days: "
        "totals, the top products by revenue, revenue by UTC day and the reservation funnel.",
    )
    async def sales_stats(
        self,
        info: Info[Context, None],
        from_: Annotated[datetime, strawberry.argument(name="from")],
        to: datetime,
        top: Annotated[int, strawberry.argument(description="1 to 50.")] = 5,
    ) -> SalesStats:
        _within_the_calendar("from", from_)
        _within_the_calendar("to", to)
        stats = await sales_stats(info.context.services.database, from_, to, top)
        return SalesStats.from_stats(stats)
