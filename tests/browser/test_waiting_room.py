"""The waiting room in the storefront and the dashboard, on a desktop and a 390 px phone:
the admin's setting, the draw explained before the start, your place and the estimate,
then "your turn: reserve within 1:30", and the reserve it allows."""

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser import test_sale_ready
from tests.browser.test_graphiql import CHROMIUM
from tests.browser.test_pages import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    WAIT_MS,
    Tab,
    api,
    card,
    message,
    new_customer,
    new_product,
    register,
    sign_in,
)
from tests.browser.test_sale_ready import fits_the_width, shot
from tests.polling import wait_until
from tests.processes import ServerProcess

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install chromium)"
)

# The sale tests' fixtures: a server per device (desktop, phone) and a tab on it.
device = test_sale_ready.device
server = test_sale_ready.server
tab = test_sale_ready.tab

ROOM = {"enabled": True, "opensBeforeSeconds": 3600, "admissionSeconds": 90}
JOIN = """mutation($p: ID!) { joinWaitingRoom(productId: $p) { errors { code } } }"""
MINE = """query($p: ID!) { myWaitingRoom(productId: $p) { state } }"""
RESERVE = """mutation($p: ID!) { reserve(productId: $p, quantity: 1) {
  reservation { id } errors { code } } }"""
CANCEL = "mutation($r: ID!) { cancelReservation(reservationId: $r) { errors { code } } }"


def test_before_the_start_the_room_explains_the_draw(
    tab: Tab, server: ServerProcess, device: str
) -> None:
    starts = datetime.now(UTC) + timedelta(hours=1)
    _, name = new_product(server, totalStock=5, saleStartsAt=starts.isoformat(), waitingRoom=ROOM)
    page = tab.open()
    product = card(page, name)
    expect(product.locator(".room-state")).to_have_text(
        "This sale has a waiting room: sign in to join it."
    )
    register(page)
    expect(product.locator(".room-state")).to_have_text(
        "This sale has a waiting room. Join it to get your place."
    )
    product.get_by_role("button", name="Join the waiting room").click()
    expect(product.locator(".room-state")).to_have_text(
        re.compile(
            r"^You're in\. Places are drawn at random when the sale starts "
            r"\(in (1:00:00|59:[0-5]\d)\) among the 1 who joined"
        )
    )
    expect(product.get_by_role("button", name="Reserve")).to_be_disabled()
    expect(product.get_by_role("button", name=re.compile("Join"))).to_be_hidden()
    product.scroll_into_view_if_needed()
    shot(page, "room-draw", device)
    assert fits_the_width(page)


def test_your_place_then_your_turn_then_the_reserve(
    tab: Tab, server: ServerProcess, device: str
) -> None:
    """Another shopper joined first and is admitted for the one unit; the page's shopper
    waits first in line; the other reserves and cancels, which frees the unit: your turn."""
    product_id, name = new_product(server, totalStock=1, holdSeconds=600, waitingRoom=ROOM)
    _, first = new_customer(server)
    assert api(server, JOIN, first, p=product_id)["joinWaitingRoom"]["errors"] == []
    wait_until(
        lambda: api(server, MINE, first, p=product_id)["myWaitingRoom"]["state"] == "ADMITTED",
        within=WAIT_MS / 1000,
        every=0.1,
        failure=lambda: "the first shopper was never admitted",
    )

    page = tab.open()
    register(page)
    product = card(page, name)
    product.get_by_role("button", name="Join the waiting room").click()
    expect(product.locator(".room-state")).to_have_text(
        "Your place: 1 · you're next · estimating your wait…"
    )
    expect(product.get_by_role("button", name="Wait for your turn")).to_be_disabled()
    product.scroll_into_view_if_needed()
    shot(page, "room-place", device)

    held = api(server, RESERVE, first, p=product_id)["reserve"]
    assert held["errors"] == [], held
    api(server, CANCEL, first, r=held["reservation"]["id"])
    expect(product.locator(".room-state")).to_have_text(
        re.compile(r"^Your turn: reserve within 1:(30|2\d)$"), timeout=WAIT_MS
    )
    shot(page, "room-your-turn", device)
    assert fits_the_width(page)

    product.get_by_role("button", name="Reserve").click()
    expect(message(page)).to_contain_text(f"Held 1 × {name}")
    expect(product.locator(".room-state")).to_have_text(
        "You reserved with your turn. Join again for another go."
    )


def test_the_admin_puts_a_product_behind_a_waiting_room(
    tab: Tab, server: ServerProcess, device: str
) -> None:
    page = tab.open("/admin")
    sign_in(page, ADMIN_EMAIL, ADMIN_PASSWORD)
    expect(page.locator("#admin")).to_be_visible()
    name = f"Room {device}"
    page.get_by_label("Name").fill(name)
    page.get_by_label("Price").fill("99")
    page.get_by_label("Total stock").fill("3")
    page.get_by_label("Waiting room").check()
    page.get_by_label("Turn length (seconds)").fill("60")
    page.get_by_label("Admitted per unit free").fill("1.5")
    page.get_by_label("Turn length (seconds)").scroll_into_view_if_needed()
    shot(page, "room-admin", device)
    page.get_by_role("button", name="Create product").click()
    expect(message(page)).to_have_text(
        f"Created {name} with 3 units, behind a waiting room (turns of 60 s, 1.5 admitted "
        "per unit free). It is in the store now."
    )
    assert fits_the_width(page)
    expect(page.get_by_label("Waiting room")).not_to_be_checked()  # the form was reset
