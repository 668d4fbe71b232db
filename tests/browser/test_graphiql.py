"""GraphiQL in a real browser (the system Chromium), with every off-server request refused."""

import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Route, sync_playwright

from tests.processes import ServerProcess, base_env

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).parent.parent.parent / "build" / "screenshots"

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install chromium)"
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(base_env(DATA_DIR=str(tmp_path / "data")))
    try:
        yield process
    finally:
        process.stop()


def test_graphiql_works_offline_and_runs_a_query(server: ServerProcess) -> None:
    own_host = urlsplit(server.url).netloc
    refused: list[str] = []

    def only_our_server(route: Route) -> None:
        if urlsplit(route.request.url).netloc == own_host:
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.route("**/*", only_our_server)
            page.goto(f"{server.url}/graphql")
            page.locator(".graphiql-container").wait_for(timeout=15_000)
            page.get_by_label("Execute query (Ctrl-Enter)").click()
            result = page.locator(".result-window")
            result.get_by_text("Nimbus X phone").wait_for(timeout=15_000)
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "graphiql.png"))
        finally:
            browser.close()
    assert refused == []
