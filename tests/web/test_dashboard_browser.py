"""The dashboard in a real headless Chromium, against a real hub on a real port.

The browser is Debian's ``/usr/bin/chromium`` (``scripts/install-browser``), never a Playwright
download. Playwright's async API shares the test's event loop with the hub, so the hub keeps
serving while the test waits on the page.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, ConsoleMessage, async_playwright, expect

from kernal.hub.server import Hub
from tests.conftest import ServiceFactory
from tests.helpers import RawClient, login
from tests.web.test_api import collaborate, share_component, share_pattern

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
XSS_ID = "<img src=x onerror=window.__xss=1>"
UPDATE_TIMEOUT_MS = 10_000  # the page polls every 3 s
REFRESH_NOW = "document.dispatchEvent(new Event('visibilitychange'))"


@pytest.fixture
def chromium() -> Path:
    """Debian's Chromium; a missing browser fails the test (a skip would hide a broken setup)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install-browser (Debian's chromium)")
    return CHROMIUM


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


async def test_dashboard_shows_live_figures_and_escapes_client_text(
    make_service: ServiceFactory, browser: Browser, tmp_path: Path
) -> None:
    service = await make_service(dashboard_port=0)
    hub: Hub = service.hub
    assert service.dashboard_address is not None
    host, port = service.dashboard_address
    clients: list[RawClient] = []
    try:
        one = await login(hub, "AI_Node_1", "networking")
        two = await login(hub, "AI_Node_2", "graphics")
        clients += [one, two]
        await share_pattern(one, "routing-table-v1", {"routes": 12})
        await share_component(two, "shader-cache", {"lang": "glsl"}, 0.82)

        context = await browser.new_context(
            viewport={"width": 1280, "height": 900}, color_scheme="dark"
        )
        page = await context.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":  # e.g. a resource blocked by the page's CSP
                problems.append(f"console: {message.text}")

        page.on("console", on_console)

        await page.goto(f"http://{host}:{port}/")
        labels = await page.locator(".card h2").all_text_contents()
        assert labels == [
            "Connected AIs",
            "Shared Patterns",
            "Shared Components",
            "Active Collaborations",
        ]
        await expect(page.locator("#connected_ais")).to_have_text("2")
        for key, value in [("shared_patterns", "1"), ("shared_components", "1")]:
            await expect(page.locator(f"#{key}")).to_have_text(value)
        await expect(page.locator("#active_collaborations")).to_have_text("0")
        await expect(page.locator("#connection")).to_have_text("Live")
        await expect(page.locator("#ais_table tbody tr")).to_have_count(2)

        # Everything below must reach the open page by polling, without a reload.
        await page.evaluate("window.__marker = 1")
        await share_pattern(one, "gradient-trick", {"lr": 0.01})
        await share_pattern(two, XSS_ID, {"payload": "<script>window.__xss=2</script>"})
        collaboration_id = await collaborate(one, two, "r1")
        await one.send(
            {"type": "COLLABORATION_PROGRESS", "collaboration_id": collaboration_id, "progress": 60}
        )
        await one.recv_type("ACK")

        await expect(page.locator("#shared_patterns")).to_have_text("3", timeout=UPDATE_TIMEOUT_MS)
        assert await page.evaluate("window.__marker") == 1, "the page was reloaded"
        await expect(page.locator("#active_collaborations")).to_have_text("1")
        collab_row = page.locator("#collabs_table tbody tr").first
        await expect(collab_row).to_contain_text("AI_Node_1")
        await expect(collab_row).to_contain_text("60%")
        await expect(collab_row).to_contain_text("active")

        # The hostile id is shown as text and never becomes an element.
        feed_ids = await page.locator("#feed_table .id").all_text_contents()
        assert XSS_ID in feed_ids
        assert await page.locator("#feed_table img").count() == 0
        assert await page.evaluate("typeof window.__xss") == "undefined"
        assert await page.locator(".series").count() == 4  # the chart has its four lines
        assert problems == []

        await page.screenshot(
            path=str(tmp_path / "dashboard.png"), full_page=True, animations="disabled"
        )
        if os.environ.get("KERNAL_SAVE_SCREENSHOT") == "1":
            (ROOT / "docs").mkdir(exist_ok=True)
            shutil.copyfile(tmp_path / "dashboard.png", ROOT / "docs" / "dashboard.png")

        # When the hub stops answering, the page says so instead of showing stale figures as live.
        # (The page also refreshes at once when its tab becomes visible again; using that instead
        # of waiting for the next 3 s tick keeps this test fast.)
        await page.route("**/status", lambda route: route.abort())
        await page.evaluate(REFRESH_NOW)
        await expect(page.locator("#unreachable")).to_be_visible(timeout=UPDATE_TIMEOUT_MS)
        await expect(page.locator("#connection")).to_have_text("Hub unreachable")
        await expect(page.locator("#connected_ais")).to_have_text("2")  # last known figures kept
        await page.unroute("**/status")
        await page.evaluate(REFRESH_NOW)
        await expect(page.locator("#connection")).to_have_text("Live", timeout=UPDATE_TIMEOUT_MS)
        await expect(page.locator("#unreachable")).to_be_hidden()
        assert await page.evaluate("window.__marker") == 1
        await context.close()
    finally:
        for client in clients:
            await client.close()
