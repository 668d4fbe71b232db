from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.types import Info

from analytics.sales import sales_stats
from graphql_api.analytics.types import SalesStats
from graphql_api.context import Context
from graphql_api.permissions import IsAdmin


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
        database = info.context.services.mongo[info.context.services.settings.mongodb_db]
        return SalesStats.from_stats(await sales_stats(database, from_, to, top))
