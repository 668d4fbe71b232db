"""The storefront and the dashboard as a new user meets them in a real sale, each test on a
desktop and on a 390 px phone: messages that go once the next action succeeds, the hold and
its Check out kept in view, the hold's real length, the per-customer limit said before the
server refuses, prices in the shop's currency, new products arriving live, a countdown to
a sale's start, and the dashboard on a phone."""

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect
from redis import Redis

from flashsale.embedded import running_endpoints
from reservations.events import CATALOG_CHANNEL
from tests.browser.test_graphiql import CHROMIUM, SCREENSHOTS
from tests.browser.test_pages import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    PASSWORD,
    WAIT_MS,
    Tab,
    api,
    card,
    create_in_dashboard,
    message,
    new_customer,
    new_product,
    product_id_of,
    register,
    sign_in,
)
from tests.polling import wait_until
from tests.processes import ServerProcess, base_env

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install chromium)"
)

DEVICES: dict[str, dict[str, Any]] = {
    "desktop": {"viewport": {"width": 1280, "height": 800}},
    "phone": {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True},
}
RESERVE = """mutation($p: ID!, $q: Int!) { reserve(productId: $p, quantity: $q) {
  reservation { id } errors { code } } }"""
CANCEL = "mutation($r: ID!) { cancelReservation(reservationId: $r) { errors { code } } }"
SUBSCRIBED_WITHIN_SECONDS = 10.0


@pytest.fixture(scope="module", params=sorted(DEVICES))
def device(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="module")
def server(device: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server per device (the storefront lists 24 products a page: each device's tests
    add theirs to a fresh catalog), its prices in euros to show the setting reaches the page."""
    data = tmp_path_factory.mktemp(f"sale-{device}") / "data"
    process = ServerProcess(
        base_env(
            DATA_DIR=str(data),
            ADMIN_PASSWORD=ADMIN_PASSWORD,
            CURRENCY="EUR",
            RATE_LIMITS_ENABLED="true",
            RATE_LIMIT_PER_IP="100000/minute",
            RATE_LIMIT_LOGIN_PER_EMAIL="1000/minute",  # new_product signs the admin in
            QUERY_COST_BUDGET="1000000",
        )
    )
    process.data_dir = data  # type: ignore[attr-defined]
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def tab(browser: Browser, server: ServerProcess, device: str) -> Iterator[Tab]:
    opened = Tab(browser, server, **DEVICES[device])
    yield opened
    opened.close()


def shot(page: Page, name: str, device: str) -> None:
    """What the shopper sees on screen (not the whole page: the point is what is in view)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"sale-{name}-{device}.png"))


def fits_the_width(page: Page) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def reserve(server: ServerProcess, token: str, product_id: str, quantity: int = 1) -> str:
    data = api(server, RESERVE, token, p=product_id, q=quantity)
    assert data["reserve"]["errors"] == [], data
    hold: str = data["reserve"]["reservation"]["id"]
    return hold


def recorded_holds(server: ServerProcess, token: str) -> list[str]:
    data = api(server, "{ myReservations(status: ACTIVE) { id } }", token)
    return [hold["id"] for hold in data["myReservations"]]


def wait_for_catalog_listener(server: ServerProcess) -> None:
    """graphql-transport-ws does not acknowledge a subscribe: wait (bounded) until the
    server listens on the catalog channel, so a product created next is announced to us."""
    endpoints = running_endpoints(server.data_dir)  # type: ignore[attr-defined]
    assert endpoints is not None
    assert endpoints["redis_url"] is not None
    redis = Redis.from_url(endpoints["redis_url"])

    def listening() -> bool:
        ((_, listeners),) = redis.pubsub_numsub(CATALOG_CHANNEL)
        return int(listeners) > 0

    try:
        wait_until(
            listening,
            within=SUBSCRIBED_WITHIN_SECONDS,
            every=0.05,
            failure=lambda: "the storefront never subscribed to the catalog",
        )
    finally:
        redis.close()


def test_a_message_goes_once_the_next_action_succeeds(
    tab: Tab, server: ServerProcess, device: str
) -> None:
    page = tab.open()
    email, _ = new_customer(server)
    sign_in(page, email, "not-the-password")
    expect(message(page)).to_have_text("That e-mail and password do not match an account.")
    page.get_by_role("button", name="Dismiss the message").click()
    expect(message(page)).to_be_empty()

    sign_in(page, email, "not-the-password-either")
    expect(message(page)).to_have_attribute("data-kind", "error")
    sign_in(page, email, PASSWORD)
    expect(page.locator("#signed-in-as")).to_have_text(f"Signed in as {email}")
    expect(message(page)).to_be_empty()  # the wrong password's message went
    expect(message(page)).to_be_hidden()

    admin = tab.open("/admin")  # still signed in, as a customer
    expect(message(admin)).to_have_text(
        "This account is not an admin: sign in with an admin account."
    )
    admin.get_by_role("button", name="Sign out").click()
    expect(message(admin)).to_be_empty()
    sign_in(admin, ADMIN_EMAIL, "wrong")
    expect(message(admin)).to_have_attribute("data-kind", "error")
    sign_in(admin, ADMIN_EMAIL, ADMIN_PASSWORD)
    expect(admin.locator("#admin")).to_be_visible()
    expect(message(admin)).to_be_empty()  # nothing stale above the admin's own dashboard


def test_the_hold_and_its_check_out_stay_in_view(
    tab: Tab, server: ServerProcess, device: str
) -> None:
    for _ in range(4):  # enough cards below the holds that scrolling hides the list
        new_product(server, totalStock=5)
    _, name = new_product(server, totalStock=5, holdSeconds=90)
    page = tab.open()
    register(page)
    mine = card(page, name)
    expect(mine.locator(".hint")).to_have_text("Up to 5 per customer · held 1 min 30 s")
    mine.get_by_role("button", name="Reserve").click()
    expect(message(page)).to_contain_text(f"Held 1 × {name} until")
    bar = page.locator("#hold-bar")
    expect(bar.locator(".what")).to_have_text(f"1 × {name}")
    expect(bar.locator(".countdown")).to_have_text(re.compile(r"^1:(30|[0-2]\d)$"))

    page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
    expect(page.locator("#holds .hold")).not_to_be_in_viewport()  # the list scrolled away…
    expect(bar).to_be_in_viewport()  # …the bar did not
    expect(bar.get_by_role("button", name="Check out")).to_be_in_viewport()
    expect(message(page)).to_be_in_viewport()
    assert fits_the_width(page)
    shot(page, "hold-bar", device)

    bar.get_by_role("button", name="Check out").click()
    expect(message(page)).to_have_text(f"Bought 1 × {name} for €25.00. Thank you!")
    expect(message(page)).to_be_in_viewport()
    expect(bar).to_be_hidden()


def test_the_limit_per_customer_is_said_before_the_server_refuses(
    tab: Tab, server: ServerProcess, device: str
) -> None:
    product_id, name = new_product(server, totalStock=4, maxPerCustomer=2)
    _, first_other = new_customer(server)
    _, second_other = new_customer(server)
    reserve(server, first_other, product_id, 2)
    theirs = reserve(server, second_other, product_id)
    page = tab.open()
    register(page)
    mine = card(page, name)
    expect(mine.locator(".available")).to_have_text("1")

    mine.get_by_label("Quantity").fill("2")
    mine.get_by_role("button", name="Reserve").click()
    expect(message(page)).to_have_text(f"Not reserved: {name}. Only 1 left: ask for fewer.")
    mine.get_by_label("Quantity").fill("1")
    mine.get_by_role("button", name="Reserve").click()
    expect(message(page)).to_contain_text(f"Held 1 × {name}")  # the error is gone
    expect(mine.locator(".limit")).to_be_hidden()

    # The other shopper lets one go and my other tab takes it: the page hears of that hold
    # and says, before any refusal, that I have all one customer may.
    api(server, CANCEL, second_other, r=theirs)
    token = page.evaluate("localStorage.getItem('flashsale.token')")
    other_tab = reserve(server, token, product_id)
    button = mine.get_by_role("button", name="Limit reached")
    expect(button).to_be_disabled(timeout=WAIT_MS)
    reason = "You hold or bought 2 of the 2 one customer may have."
    expect(mine.locator(".limit")).to_have_text(reason)
    expect(button).to_have_accessible_description(reason)
    expect(page.locator("#hold-bar")).to_contain_text("+1 more hold")
    mine.scroll_into_view_if_needed()
    shot(page, "limit", device)

    # One bought, one held: after a reload the page counts each once (the bought hold is in
    # both my reservations and my orders).
    page.locator("#hold-bar").get_by_role("button", name="Check out").click()
    expect(message(page)).to_contain_text(f"Bought 1 × {name}")
    # myReservations lists what MongoDB recorded, a moment behind Redis (the persister's
    # lag; a loaded machine once made it longer than this test takes): reload once the
    # other tab's hold is recorded, as a page loaded later would find it.
    wait_until(
        lambda: other_tab in recorded_holds(server, token),
        within=WAIT_MS / 1000,
        every=0.1,
        failure=lambda: f"{other_tab} not in myReservations: {recorded_holds(server, token)}",
    )
    page.reload()
    expect(mine.locator(".limit")).to_have_text(reason, timeout=WAIT_MS)

    # My last hold ends: Reserve is back.
    page.locator("#holds .hold").get_by_role("button", name="Cancel").click()
    expect(message(page)).to_contain_text(f"Cancelled: 1 × {name}")
    expect(mine.get_by_role("button", name="Reserve")).to_be_enabled()
    expect(mine.locator(".limit")).to_be_hidden()


def test_a_product_the_admin_creates_appears_in_open_storefronts(
    tab: Tab, server: ServerProcess, device: str
) -> None:
    page = tab.open()
    expect(page.locator("#live-status")).to_have_attribute("data-kind", "live")
    wait_for_catalog_listener(server)
    product_id, name = new_product(server, totalStock=6, description="Just dropped.")

    arrived = card(page, name)  # no reload
    expect(arrived).to_be_visible(timeout=WAIT_MS)
    expect(arrived.locator(".price")).to_have_text("€25.00")
    expect(arrived.locator(".available")).to_have_text("6")
    _, token = new_customer(server)
    reserve(server, token, product_id, 2)
    expect(arrived.locator(".available")).to_have_text("4", timeout=WAIT_MS)  # and it is live
    arrived.scroll_into_view_if_needed()
    shot(page, "new-product", device)


def test_a_sale_not_started_counts_down_then_opens(
    tab: Tab, server: ServerProcess, device: str
) -> None:
    now = datetime.now(UTC)
    _, later = new_product(
        server, totalStock=5, saleStartsAt=(now + timedelta(hours=1)).isoformat()
    )
    _, soon = new_product(
        server, totalStock=5, saleStartsAt=(now + timedelta(seconds=8)).isoformat(), holdSeconds=5
    )
    page = tab.open()
    waiting = card(page, later)
    expect(waiting.locator(".sale-state")).to_have_text(
        re.compile(r"^Starts in (1:00:00|59:[0-5]\d) \(")
    )
    opening = card(page, soon)
    expect(opening.locator(".sale-state")).to_have_text(re.compile(r"^Starts in 0:0\d \("))
    expect(opening.locator(".hint")).to_have_text("Up to 5 per customer · held 5 s")
    register(page)
    expect(waiting.get_by_role("button", name="Reserve")).to_be_disabled()
    opening.scroll_into_view_if_needed()
    shot(page, "countdown", device)

    expect(opening.locator(".sale-state")).to_have_text("On sale", timeout=WAIT_MS + 8_000)
    opening.get_by_role("button", name="Reserve").click()
    expect(message(page)).to_contain_text(f"Held 1 × {soon}")


def test_the_dashboard_fits_the_screen(tab: Tab, server: ServerProcess, device: str) -> None:
    page = tab.open("/admin")
    sign_in(page, ADMIN_EMAIL, ADMIN_PASSWORD)
    expect(page.locator("#admin")).to_be_visible()
    expect(page.get_by_text("Price (EUR)")).to_be_visible()
    name = f"Dash {device}"
    row = create_in_dashboard(page, name, "19.90", 3)
    expect(row.get_by_text("€19.90")).to_be_visible()
    amount = row.get_by_label(f"Units to add to {name}")
    add = row.get_by_role("button", name="Add")
    amount.scroll_into_view_if_needed()
    expect(amount).to_be_in_viewport()
    expect(add).to_be_in_viewport()
    amount.fill("2")
    add.click()
    expect(message(page)).to_have_text(f"{name}: 2 more units, 5 available now.")
    expect(row.locator(".total")).to_contain_text("5")
    shot(page, "admin-restock", device)
    assert fits_the_width(page)  # nothing sticks out: no sideways scrolling

    labels = page.locator("#chart-days svg text.label")
    expect(labels.first).to_be_visible()
    boxes = [box for box in (label.bounding_box() for label in labels.all()) if box]
    assert len(boxes) >= 2
    heights = [box["height"] for box in boxes]
    assert min(heights) >= 10, heights  # drawn at their CSS size, not shrunk to fit
    spans = sorted((box["x"], box["x"] + box["width"]) for box in boxes)
    overlaps = [(a, b) for a, b in zip(spans, spans[1:], strict=False) if a[1] > b[0]]
    assert overlaps == []

    # A sale elsewhere redraws the charts; figures the admin opened stay open.
    figures = page.locator("#chart-days details")
    figures.locator("summary").click()
    expect(figures).to_have_attribute("open", "")
    counted = re.findall(r"\((\d+) (orders?)\)", figures.inner_text())
    assert counted, figures.inner_text()
    assert all((n == "1") == (word == "order") for n, word in counted), counted
    made = page.locator("#chart-funnel li", has_text="Holds made").locator(".bar-value")
    before = int(made.inner_text())
    _, token = new_customer(server)
    reserve(server, token, product_id_of(server, name))
    expect(made).to_have_text(str(before + 1), timeout=WAIT_MS)
    expect(page.locator("#chart-days details")).to_have_attribute("open", "")
    page.locator("#totals").scroll_into_view_if_needed()
    shot(page, "admin-charts", device)
    page.screenshot(path=str(SCREENSHOTS / f"sale-admin-{device}.png"), full_page=True)
