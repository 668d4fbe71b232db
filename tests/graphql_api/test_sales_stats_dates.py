"""salesStats with dates at the edges of the calendar: refused as BAD_USER_INPUT naming the
field, never an OverflowError (a masked INTERNAL_SERVER_ERROR)."""

import pytest

from tests.conftest import GraphQL, error_codes

SALES = """query S($from: DateTime!, $to: DateTime!) {
  salesStats(from: $from, to: $to) { totals { orders } byDay { day } } }"""


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        # The last day of the calendar: the day after it does not exist.
        ("9999-12-30T00:00:00Z", "9999-12-31T12:00:00Z", "to"),
        ("9999-12-31T00:00:00Z", "9999-12-31T12:00:00Z", "to"),
        ("9999-12-31T01:00:00Z", "9999-12-31T23:59:59.999999Z", "from"),
        # Before midnight where it was given, the year 10000 in UTC.
        ("9999-12-30T00:00:00Z", "9999-12-31T23:00:00-05:00", "to"),
        # After midnight where it was given, the year 0 in UTC.
        ("0001-01-01T00:00:00+01:00", "0001-01-02T00:00:00Z", "from"),
        ("0001-01-01T00:00:00+01:00", "0001-01-01T00:30:00+01:00", "from"),
    ],
)
async def test_dates_past_the_calendar_are_bad_input(
    gql: GraphQL, admin_token: str, start: str, end: str, field: str
) -> None:
    body = await gql(SALES, {"from": start, "to": end}, token=admin_token)

    assert error_codes(body) == ["BAD_USER_INPUT"], body
    assert body["errors"][0]["extensions"]["field"] == field


@pytest.mark.parametrize(
    ("start", "end", "days"),
    [
        ("0001-01-01T00:00:00Z", "0001-01-03T00:00:00Z", ["0001-01-01", "0001-01-02"]),
        ("9999-12-29T12:00:00Z", "9999-12-31T00:00:00Z", ["9999-12-29", "9999-12-30"]),
    ],
)
async def test_dates_at_the_edges_of_the_calendar_are_served(
    gql: GraphQL, admin_token: str, start: str, end: str, days: list[str]
) -> None:
    body = await gql(SALES, {"from": start, "to": end}, token=admin_token)

    assert "errors" not in body, body
    stats = body["data"]["salesStats"]
    assert stats["totals"] == {"orders": 0}
    assert [day["day"] for day in stats["byDay"]] == days
