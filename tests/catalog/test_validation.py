"""Pure rules for product fields (no servers needed)."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from catalog.validation import cents_to_price, check_description, check_name, price_to_cents
from core.errors import InvalidInput


@given(st.integers(min_value=0, max_value=100_000_000))
def test_cents_round_trip_exactly(cents: int) -> None:
    assert price_to_cents(cents_to_price(cents)) == cents


@given(st.decimals(min_value=0, max_value=1_000_000, places=2, allow_nan=False))
def test_two_place_prices_convert_exactly(price: Decimal) -> None:
    assert Decimal(price_to_cents(price)) / 100 == price


@pytest.mark.parametrize(
    "price", ["-0.01", "0.001", "1000000.01", "NaN", "Infinity", "-Infinity", "sNaN"]
)
def test_invalid_prices(price: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        price_to_cents(Decimal(price))
    assert refused.value.field == "price"


@pytest.mark.parametrize(
    "name", ["\u0000", "Phone\u0000", "two\nlines", "tab\there", "bell\u0007", "c1\u0085inside"]
)
def test_names_with_control_characters_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_name(name)
    assert refused.value.field == "name"


def test_descriptions_keep_newlines_and_tabs_but_no_other_control_character() -> None:
    assert check_description("Line one\n\tindented") == "Line one\n\tindented"
    with pytest.raises(InvalidInput) as refused:
        check_description("nul\u0000")
    assert refused.value.field == "description"
    assert check_name("  Nimbus X phone  ") == "Nimbus X phone"
