"""``/docs`` in a real headless Chromium: it renders the API from /openapi.json under the strict
CSP, and asks nothing of any other origin."""

from __future__ import annotations

from playwright.async_api import Browser, ConsoleMessage, Request, expect

from tests.conftest import ServiceFactory
from tests.web.test_dashboard_browser import browser, chromium  # noqa: F401  (fixtures)


async def test_docs_page_renders_offline_under_the_csp(
    make_service: ServiceFactory,
    browser: Browser,  # noqa: F811
) -> None:
    service = await make_service(dashboard_port=0)
    assert service.dashboard_address is not None
    host, port = service.dashboard_address
    origin = f"http://{host}:{port}"
    page = await browser.new_page()
    problems: list[str] = []
    elsewhere: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            problems.append(message.text)

    def on_request(request: Request) -> None:
        if not request.url.startswith(origin) and not request.url.startswith("data:"):
            elsewhere.append(request.url)

    page.on("console", on_console)
    page.on("request", on_request)
    await page.goto(f"{origin}/docs")
    await expect(page.locator("details.op").first).to_be_visible()
    await expect(page.locator("#operations")).to_contain_text("/api/patterns")
    await expect(page.locator("#title")).to_contain_text("kernal hub")
    await page.locator("summary", has_text="/api/patterns").first.click()
    await expect(page.locator("#operations")).to_contain_text("cursor")
    assert problems == []
    assert elsewhere == []
    await page.close()
