"""Starting and stopping a trainer from the dashboard's form, in a real headless Chromium
(Debian's, never a download), against a real hub that runs the trainer as a child process."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Browser, expect

from tests.conftest import ServiceFactory
from tests.web.test_dashboard_browser import browser, chromium, watch_problems  # noqa: F401  (fixtures)
from tests.web.test_trainers import running

ADMIN = "admin-secret"
JOIN_TIMEOUT_MS = 60_000  # a guard, not a threshold: the child starts Python and imports kernal


async def test_start_a_trainer_from_the_form_see_it_join_and_stop_it(
    make_service: ServiceFactory,
    browser: Browser,  # noqa: F811
    tmp_path: Path,
) -> None:
    service = await make_service(dashboard_port=0, admin_token=ADMIN, speed=100.0)
    assert service.web is not None
    host, port = service.web.address
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    problems = watch_problems(page)
    await page.goto(f"http://{host}:{port}/#/trainers")
    await expect(page.locator("#view_trainers")).to_be_visible()
    await expect(page.locator("#launch_engine option[value=simulated]")).to_have_count(1)
    assert await page.locator("#trainers_off").is_hidden()

    # A wrong token: the API's error is shown, nothing starts.
    await page.fill("#admin_token", "wrong")
    await page.fill("#launch_ai_id", "AI_Browser_1")
    await page.select_option("#launch_engine", "simulated")
    await page.click("#launch_submit")
    await expect(page.locator("#trainer_error")).to_contain_text("admin token")
    # A bad option: the engine's own message.
    await page.fill("#admin_token", ADMIN)
    await page.fill("#launch_options", "bogus=1")
    await page.click("#launch_submit")
    await expect(page.locator("#trainer_error")).to_contain_text("bogus: unknown option")
    assert await page.locator("#trainers_table tbody tr").count() == 0

    await page.fill("#launch_options", "")
    await page.fill("#launch_capabilities", "routing, dns")
    await page.click("#launch_submit")
    await expect(page.locator("#launch_done")).to_contain_text("Launched AI_Browser_1")
    await expect(page.locator("#trainer_error")).to_be_hidden()
    row = page.locator("#trainers_table tbody tr", has_text="AI_Browser_1")
    await expect(row).to_contain_text("connected", timeout=JOIN_TIMEOUT_MS)
    await expect(page.locator("#connected_ais")).to_have_text("1")
    pid = int(await row.locator("td").nth(4).inner_text())
    assert running(pid)

    # Its page shows the process, its output, and stops it.
    await row.locator("a.id").click()
    await expect(page.locator("#ai_trainer")).to_be_visible()
    await expect(page.locator("#ai_trainer_logs")).to_contain_text(
        "AI_Browser_1", timeout=JOIN_TIMEOUT_MS
    )
    await page.screenshot(path=str(tmp_path / "launched-trainer.png"), full_page=True)
    await page.click("#ai_trainer_stop button")
    await expect(page.locator("#ai_trainer")).to_be_hidden(timeout=JOIN_TIMEOUT_MS)
    await expect(page.locator("#connected_ais")).to_have_text("0", timeout=JOIN_TIMEOUT_MS)
    assert not running(pid)
    await page.click("nav a[data-route=trainers]")
    await expect(page.locator("#trainers_empty")).to_be_visible()
    # The browser logs every answer that is not 2xx: the refused launches (401, 422) and the
    # logs of the trainer just stopped (404), asked once more before the list said it was gone.
    expected = [f"status of {code} " for code in (401, 404, 422)]
    assert [p for p in problems if not any(e in p for e in expected)] == []
    await context.close()


async def test_the_form_says_how_to_turn_launching_on(
    make_service: ServiceFactory,
    browser: Browser,  # noqa: F811
) -> None:
    service = await make_service(dashboard_port=0)
    assert service.web is not None
    host, port = service.web.address
    page = await browser.new_page()
    await page.goto(f"http://{host}:{port}/#/trainers")
    await expect(page.locator("#trainers_off")).to_be_visible()
    await expect(page.locator("#trainers_off_text")).to_contain_text("kernal hub --admin-token")
    await expect(page.locator("#launch_submit")).to_be_disabled()
    await page.close()
