"""The storefront and the admin dashboard in a real browser (the system Chromium), against
`flashsale serve` on the embedded default, with every off-server request refused."""

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect

from tests.browser.test_graphiql import CHROMIUM, SCREENSHOTS
from tests.processes import ServerProcess, base_env

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install chromium)"
)

ADMIN_EMAIL = "admin@flashsale.example"
ADMIN_PASSWORD = "browser-test-admin"
PASSWORD = "shopper-password"
WAIT_MS = 10_000  # the longest any expectation waits for the page to catch up


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("pages") / "data"
    process = ServerProcess(
        base_env(
            DATA_DIR=str(data),
            ADMIN_PASSWORD=ADMIN_PASSWORD,
            # The limits on, as a user gets them, with room for one address running every
            # test; 4 reserves a minute per user so the storefront's refusal can be seen.
            RATE_LIMITS_ENABLED="true",
            RATE_LIMIT_PER_IP="100000/minute",
            RATE_LIMIT_RESERVE_PER_USER="4/minute",
            QUERY_COST_BUDGET="1000000",
        )
    )
    try:
        yield process
    finally:
        process.stop()


class Tab:
    """A browser context with one page that may only talk to our server, and that records
    every script error. Its locale is en-US unless told, so amounts read "$25.00"."""

    def __init__(self, browser: Browser, server: ServerProcess, **options: Any) -> None:
        self.context: BrowserContext = browser.new_context(**{"locale": "en-US", **options})
        self.own_host = urlsplit(server.url).netloc
        self.refused: list[str] = []
        self.errors: list[str] = []
        self.context.route("**/*", self._only_our_server)
        self.page: Page = self.context.new_page()
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on(
            "console",
            lambda message: self.errors.append(message.text) if message.type == "error" else None,
        )
        self.url = server.url

    def _only_our_server(self, route: Route) -> None:
        if urlsplit(route.request.url).netloc == self.own_host:
            route.continue_()
        else:
            self.refused.append(route.request.url)
            route.abort()

    def open(self, path: str = "/") -> Page:
        self.page.goto(self.url + path)
        expect(self.page.locator("#live-status, #signed-out-hint").first).to_be_visible()
        return self.page

    def close(self) -> None:
        self.context.close()
        assert self.refused == []
        assert self.errors == []


@pytest.fixture
def tabs(browser: Browser, server: ServerProcess) -> Iterator[list[Tab]]:
    opened: list[Tab] = []
    yield opened
    for tab in opened:
        tab.close()


def api(server: ServerProcess, query: str, token: str | None = None, **variables: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = httpx.post(
        f"{server.url}/graphql", json={"query": query, "variables": variables}, headers=headers
    ).json()
    assert "errors" not in body, body
    return body["data"]


def login(server: ServerProcess, email: str, password: str) -> str:
    data = api(
        server,
        "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }",
        e=email,
        p=password,
    )
    token: str = data["login"]["token"]
    return token


def new_customer(server: ServerProcess) -> tuple[str, str]:
    email = f"shopper-{uuid.uuid4().hex[:8]}@example.com"
    data = api(
        server,
        "mutation($e: String!, $p: String!) { register(email: $e, password: $p) { token } }",
        e=email,
        p=PASSWORD,
    )
    return email, data["register"]["token"]


def new_product(server: ServerProcess, **fields: Any) -> tuple[str, str]:
    name = f"Drop {uuid.uuid4().hex[:6]}"
    data = api(
        server,
        "mutation($i: ProductInput!) {"
        " createProduct(input: $i) { product { id } errors { code } } }",
        login(server, ADMIN_EMAIL, ADMIN_PASSWORD),
        i={"name": name, "price": "25.00", **fields},
    )
    assert data["createProduct"]["errors"] == []
    return data["createProduct"]["product"]["id"], name


def register(page: Page) -> str:
    email = f"shopper-{uuid.uuid4().hex[:8]}@example.com"
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("#signed-in-as")).to_have_text(f"Signed in as {email}")
    return email


def card(page: Page, name: str) -> Any:
    return page.locator(f'li.product[aria-label="{name}"]')


def sign_in(page: Page, email: str, password: str) -> None:
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()


def create_in_dashboard(page: Page, name: str, price: str, stock: int) -> Any:
    """Create a product with the admin dashboard's form; its row in the products table."""
    page.get_by_label("Name").fill(name)
    page.get_by_label("Price").fill(price)
    page.get_by_label("Total stock").fill(str(stock))
    page.get_by_role("button", name="Create product").click()
    expect(message(page)).to_have_text(
        f"Created {name} with {stock} units. It is in the store now."
    )
    return page.locator("#catalog-rows tr", has_text=name)


def message(page: Page) -> Any:
    return page.locator("#messages")


def test_a_shopper_buys_the_last_units_while_another_browser_watches(
    browser: Browser, server: ServerProcess, tabs: list[Tab]
) -> None:
    _, name = new_product(server, totalStock=3, maxPerCustomer=3, holdSeconds=600)
    shopper, watcher = Tab(browser, server), Tab(browser, server)
    tabs += [shopper, watcher]
    watching = watcher.open()
    expect(watching.locator("#live-status")).to_have_attribute("data-kind", "live")
    expect(card(watching, name).locator(".available")).to_have_text("3")

    page = shopper.open()
    register(page)
    mine = card(page, name)
    mine.get_by_label("Quantity").fill("2")
    mine.get_by_role("button", name="Reserve").click()
    expect(message(page)).to_contain_text(f"Held 2 × {name} until")
    hold = page.locator("#holds .hold")
    expect(hold).to_have_count(1)
    deadline = hold.locator("time.expires-at").get_attribute("datetime")
    expect(hold.locator(".countdown")).to_have_text(
        re.compile(r"^(10:00|9:[0-5]\d)$")  # a 600 s hold: 10:00 or just under
    )
    expect(card(watching, name).locator(".available")).to_have_text("1", timeout=WAIT_MS)
    expect(card(watching, name).locator(".reserved")).to_have_text("2")

    page.reload()  # the hold and its deadline come back from the server
    hold = page.locator("#holds .hold")
    expect(hold).to_have_count(1, timeout=WAIT_MS)
    expect(hold.locator("time.expires-at")).to_have_attribute("datetime", deadline or "")
    hold.get_by_role("button", name="Check out").click()
    expect(message(page)).to_contain_text(f"Bought 2 × {name} for $50.00")
    expect(page.locator("#orders")).to_contain_text(name)
    expect(page.locator("#holds .hold")).to_have_count(0)
    expect(card(watching, name).locator(".sold")).to_have_text("2", timeout=WAIT_MS)

    # The last unit, by keyboard alone: Enter in the quantity field reserves.
    quantity = card(page, name).get_by_label("Quantity")
    quantity.fill("1")
    quantity.press("Enter")
    expect(message(page)).to_contain_text(f"Held 1 × {name}")
    page.locator("#holds .hold").get_by_role("button", name="Check out").press("Enter")
    expect(message(page)).to_contain_text(f"Bought 1 × {name}")
    watched = card(watching, name)
    expect(watched.locator(".available")).to_have_text("0", timeout=WAIT_MS)
    expect(watched.locator(".sale-state")).to_have_text("Sold out")
    expect(watched.get_by_role("button")).to_be_disabled()
    expect(page.locator("#reservations")).to_contain_text("completed")

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "store.png"), full_page=True)
    phone = Tab(browser, server, viewport={"width": 390, "height": 844}, is_mobile=True)
    tabs.append(phone)
    small = phone.open()
    expect(card(small, name)).to_be_visible()
    assert small.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    small.screenshot(path=str(SCREENSHOTS / "store-phone.png"), full_page=True)


def test_a_short_hold_expires_on_screen(
    browser: Browser, server: ServerProcess, tabs: list[Tab]
) -> None:
    _, name = new_product(server, totalStock=5, holdSeconds=5)
    tab = Tab(browser, server)
    tabs.append(tab)
    page = tab.open()
    register(page)
    card(page, name).get_by_role("button", name="Reserve").click()
    expect(page.locator("#holds .hold")).to_have_count(1)
    expect(card(page, name).locator(".available")).to_have_text("4")
    # The hold's expiry event (no reload, no polling) ends it on screen.
    expect(message(page)).to_contain_text(f"Your hold on {name} expired", timeout=WAIT_MS)
    expect(page.locator("#holds .hold")).to_have_count(0)
    expect(page.locator("#no-holds")).to_be_visible()
    expect(page.locator("#reservations")).to_contain_text("expired")
    expect(card(page, name).locator(".available")).to_have_text("5")


def test_refusals_read_clearly(browser: Browser, server: ServerProcess, tabs: list[Tab]) -> None:
    _, limited = new_product(server, totalStock=10, maxPerCustomer=1)
    scarce_id, scarce = new_product(server, totalStock=3, maxPerCustomer=3)
    _, spare = new_product(server, totalStock=10, maxPerCustomer=3)
    _, other_token = new_customer(server)
    held = api(
        server,
        "mutation($p: ID!) { reserve(productId: $p, quantity: 2) { errors { code } } }",
        other_token,
        p=scarce_id,
    )
    assert held["reserve"]["errors"] == []
    tab = Tab(browser, server)
    tabs.append(tab)
    page = tab.open()
    register(page)

    card(page, limited).get_by_role("button", name="Reserve").click()  # 1st reserve
    expect(message(page)).to_contain_text(f"Held 1 × {limited}")
    # The page knows the limit is reached: Reserve is off, and says why.
    expect(card(page, limited).get_by_role("button", name="Limit reached")).to_be_disabled()
    expect(card(page, limited).locator(".limit")).to_have_text(
        "You hold or bought 1 of the 1 one customer may have."
    )
    expect(card(page, scarce).locator(".available")).to_have_text("1")
    card(page, scarce).get_by_label("Quantity").fill("2")
    card(page, scarce).get_by_role("button", name="Reserve").click()  # 2nd
    expect(message(page)).to_have_text(f"Not reserved: {scarce}. Only 1 left: ask for fewer.")
    card(page, scarce).get_by_label("Quantity").fill("1")
    card(page, scarce).get_by_role("button", name="Reserve").click()  # 3rd
    expect(message(page)).to_contain_text(f"Held 1 × {scarce}")
    expect(card(page, scarce).locator(".sale-state")).to_have_text("All held: some may come back")
    card(page, spare).get_by_role("button", name="Reserve").click()  # 4th: the last allowed
    expect(message(page)).to_contain_text(f"Held 1 × {spare}")
    card(page, spare).get_by_role("button", name="Reserve").click()  # 5th in a minute
    expect(message(page)).to_contain_text(f"Not reserved: {spare}. Too many tries at once. Wait")
    expect(message(page)).to_have_attribute("data-kind", "error")


def product_id_of(server: ServerProcess, name: str) -> str:
    data = api(server, "{ products(first: 100) { edges { node { id name } } } }")
    (found,) = [e["node"]["id"] for e in data["products"]["edges"] if e["node"]["name"] == name]
    return str(found)


def test_the_admin_creates_a_product_and_watches_the_sale_in_charts(
    browser: Browser, server: ServerProcess, tabs: list[Tab]
) -> None:
    tab = Tab(browser, server, viewport={"width": 1280, "height": 1000})
    tabs.append(tab)
    page = tab.open("/admin")
    email, _ = new_customer(server)
    sign_in(page, email, PASSWORD)
    expect(message(page)).to_have_text(
        "This account is not an admin: sign in with an admin account."
    )
    expect(page.locator("#admin")).to_be_hidden()
    page.get_by_role("button", name="Sign out").click()

    sign_in(page, ADMIN_EMAIL, ADMIN_PASSWORD)
    expect(page.locator("#admin")).to_be_visible()

    name = f"Admin drop {uuid.uuid4().hex[:6]}"
    row = create_in_dashboard(page, name, "120.50", 4)
    expect(row.locator(".available")).to_have_text("4")
    expect(page.locator("#chart-days svg rect.bar")).to_have_count(30)  # one per day
    # What only the server can check comes back as a message; nothing is created.
    page.get_by_label("Name").fill("Backwards")
    page.get_by_label("Price").fill("12")
    page.get_by_label("Sale starts (local time)").fill("2030-01-02T10:00")
    page.get_by_label("Sale ends (local time)").fill("2030-01-01T10:00")
    page.get_by_role("button", name="Create product").click()
    expect(message(page)).to_have_text("saleEndsAt: must be after saleStartsAt")
    expect(page.locator("#catalog-rows tr", has_text="Backwards")).to_have_count(0)

    # A sale made elsewhere shows up: stock at once, then the charts.
    product_id = product_id_of(server, name)
    _, token = new_customer(server)
    reserved = api(
        server,
        "mutation($p: ID!) { reserve(productId: $p, quantity: 1) { reservation { id } } }",
        token,
        p=product_id,
    )
    api(
        server,
        "mutation($r: ID!) { checkout(reservationId: $r) { order { id } } }",
        token,
        r=reserved["reserve"]["reservation"]["id"],
    )
    expect(row.locator(".sold")).to_have_text("1", timeout=WAIT_MS)
    expect(page.locator("#chart-top")).to_contain_text(name, timeout=WAIT_MS)
    expect(page.locator("#chart-top")).to_contain_text("$120.50 · 1 unit")
    expect(page.locator("#chart-funnel")).to_contain_text("Checked out")
    assert page.locator("#chart-days svg rect.bar").count() == 30

    row.get_by_label(f"Units to add to {name}").fill("6")
    row.get_by_role("button", name="Add").click()
    expect(message(page)).to_contain_text(f"{name}: 6 more units, 9 available now.")
    expect(row.locator(".total")).to_have_text("10")
    page.screenshot(path=str(SCREENSHOTS / "admin.png"), full_page=True)
