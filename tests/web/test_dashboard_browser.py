"""The dashboard in a real headless Chromium, against a real hub on a real port.

The browser is Debian's ``/usr/bin/chromium`` (``scripts/install-browser``), never a Playwright
download. Playwright's async API shares the test's event loop with the hub, so the hub keeps
serving while the test waits on the page.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright, expect

from kernal.config import TrainerSettings
from kernal.hub.server import Hub
from kernal.trainer.trainer import Trainer
from kernal.web.app import create_app
from kernal.web.server import start_web
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
UPDATE_TIMEOUT_MS = 10_000  # figures are pushed within a second, views refresh every 3 s
TRAINER_SPEED = 10  # scenario seconds per real second: trainers share every half second


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


def watch_problems(page: Page) -> list[str]:
    """Page errors and console errors (e.g. a resource blocked by the page's CSP), as they come."""
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(f"console: {message.text}")

    page.on("console", on_console)
    return problems


async def test_dashboard_shows_live_figures_and_escapes_client_text(
    make_service: ServiceFactory, browser: Browser, tmp_path: Path
) -> None:
    service = await make_service(dashboard_port=0)
    hub: Hub = service.hub
    assert service.web is not None
    host, port = service.web.address
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
        problems = watch_problems(page)

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
        await expect(page.locator("body")).to_have_attribute("data-stream", "open")

        # Everything below must reach the open page without a reload.
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

        # The hostile id is shown as text and never becomes an element.
        await expect(page.locator("#feed_table tbody tr")).to_have_count(4)
        feed_ids = await page.locator("#feed_table .id").all_text_contents()
        assert XSS_ID in feed_ids
        assert await page.locator("img").count() == 0
        assert await page.evaluate("typeof window.__xss") == "undefined"
        for chart in ("connected", "collabs", "patterns", "components"):
            assert int(await page.locator(f"#chart_{chart}").get_attribute("data-points") or 0) > 0

        await page.click("nav a[data-route=ais]")
        await expect(page.locator("#ais_table tbody tr")).to_have_count(2)
        await page.click("nav a[data-route=collaborations]")
        collab_row = page.locator("#collabs_table tbody tr").first
        await expect(collab_row).to_contain_text("AI_Node_1")
        await expect(collab_row).to_contain_text("60%")
        await expect(collab_row).to_contain_text("active")
        assert problems == []

        # When the hub's web server stops, the page says so instead of showing stale figures
        # as live, keeps the last figures, and recovers by itself once it is back.
        await service.web.stop()
        await expect(page.locator("#unreachable")).to_be_visible(timeout=UPDATE_TIMEOUT_MS)
        await expect(page.locator("#connection")).to_have_text("Hub unreachable")
        await expect(page.locator("#connected_ais")).to_have_text("2")
        service.web = await start_web(create_app(hub), host, port)
        await expect(page.locator("#connection")).to_have_text("Live", timeout=UPDATE_TIMEOUT_MS)
        await expect(page.locator("#unreachable")).to_be_hidden()
        await expect(page.locator("body")).to_have_attribute("data-stream", "open")
        assert await page.evaluate("window.__marker") == 1
        await context.close()
    finally:
        for client in clients:
            await client.close()


async def test_dashboard_polls_when_the_hub_refuses_a_stream(
    make_service: ServiceFactory, browser: Browser
) -> None:
    service = await make_service(dashboard_port=0)
    assert service.web is not None
    service.web.app.state.live_feed.max_streams = 0  # every stream refused: 503
    host, port = service.web.address
    client = await login(service.hub, "AI_Node_1", "networking")
    try:
        context = await browser.new_context()
        page = await context.new_page()
        problems = watch_problems(page)
        await page.goto(f"http://{host}:{port}/")
        await expect(page.locator("#connection")).to_have_text("Live (polling)")
        await expect(page.locator("body")).to_have_attribute("data-stream", "down")
        await expect(page.locator("#connected_ais")).to_have_text("1")
        await share_pattern(client, "polled", {"val_accuracy": 0.5})
        await expect(page.locator("#shared_patterns")).to_have_text("1", timeout=UPDATE_TIMEOUT_MS)
        assert await page.evaluate("document.body.dataset.pushes") is None  # nothing pushed
        # Chromium logs the refused stream (503) as an error: that one only, nothing else.
        refused = "console: Failed to load resource: the server responded with a status of 503"
        assert [p for p in problems if not p.startswith(refused)] == []
        await context.close()
    finally:
        await client.close()


def learning_trainer(hub: Hub, n: int, specialization: str, behaviour: str) -> Trainer:
    """A reference trainer with the learning engine (real training on the digits data)."""
    settings = TrainerSettings(
        ai_id=f"AI_Node_{n}",
        specialization=specialization,
        token=f"secret{n}",
        hub_host=hub.address[0],
        hub_port=hub.address[1],
        speed=TRAINER_SPEED,
        seed=n,
        # Fewer local epochs before the first share than by default: the page fills sooner.
        engine_options={"behaviour": behaviour, "local_epochs": 5},
    )
    return Trainer(settings)


async def test_dashboard_of_a_hub_with_learning_trainers(
    make_service: ServiceFactory, browser: Browser, tmp_path: Path
) -> None:
    """Two runs of one hub, the second with four learning trainers: the history shows the
    downtime and the earlier run, live figures arrive pushed, learning and trust are drawn, an
    AI's page and the knowledge browser are used by keyboard."""
    # A snapshot every 0.1 s: the page breaks lines where none came for 2.5 intervals + 1 s.
    options = {"dashboard_port": 0, "speed": TRAINER_SPEED, "stats_interval": 1.0}
    earlier = await make_service(**options)
    one = await login(earlier.hub, "AI_Node_1", "networking")
    two = await login(earlier.hub, "AI_Node_2", "graphics")
    await share_pattern(one, "from-the-earlier-run", {"val_accuracy": 0.5})
    await collaborate(one, two, "left-open")  # the restart fails it
    for client in (one, two):
        await client.close()
    await earlier.stop()
    await asyncio.sleep(1.5)  # down for longer than the page's gap (1.25 s): a gap it must show

    service = await make_service(**options)  # the same database: the earlier run is history
    hub: Hub = service.hub
    assert service.web is not None
    host, port = service.web.address
    trainers = [
        learning_trainer(hub, 1, "networking", "honest"),
        learning_trainer(hub, 2, "graphics", "honest"),
        learning_trainer(hub, 3, "storage", "honest"),
        learning_trainer(hub, 4, "security", "label_flip"),
    ]
    runs = [asyncio.create_task(trainer.run()) for trainer in trainers]
    try:
        context = await browser.new_context(
            viewport={"width": 1440, "height": 1000}, color_scheme="light"
        )
        page = await context.new_page()
        problems = watch_problems(page)
        await page.goto(f"http://{host}:{port}/")
        await expect(page.locator("#connected_ais")).to_have_text("4", timeout=UPDATE_TIMEOUT_MS)
        await expect(page.locator("body")).to_have_attribute("data-stream", "open")

        # Live: the figures change on the open page, pushed by the hub (no /status polling).
        shared = await page.locator("#shared_components").text_content()
        pushes = int(await page.evaluate("document.body.dataset.pushes"))
        await expect(page.locator("#shared_components")).not_to_have_text(
            shared or "", timeout=UPDATE_TIMEOUT_MS
        )
        assert int(await page.evaluate("document.body.dataset.pushes")) > pushes

        # Learning and trust, from what the trainers reported and rated.
        await expect(page.locator("#learning_table tbody tr")).to_have_count(
            4, timeout=UPDATE_TIMEOUT_MS
        )
        # The same question, answered by peers' scores instead of the trainers' own reports.
        await page.click("#learning_mode button[data-mode=rated]")
        await expect(page.locator("#learning_count_head")).to_have_text("Scores")
        await expect(page.locator("#learning_summary")).to_contain_text("as their peers rate them")
        await page.click("#learning_mode button[data-mode=reported]")
        await expect(page.locator("#learning_summary")).to_contain_text("by their own reports")
        await expect(page.locator("#trust_graph")).to_have_attribute(
            "data-nodes", "4", timeout=UPDATE_TIMEOUT_MS
        )
        await expect(page.locator("#trust_graph .edge").first).to_be_attached(
            timeout=UPDATE_TIMEOUT_MS
        )
        # The trainers report the trust they hold (TRAINER_REPORT): the graph draws that.
        await expect(page.locator("#trust_source")).to_contain_text(
            "reputation the trainer holds", timeout=UPDATE_TIMEOUT_MS
        )
        await expect(page.locator("#refused li").first).to_be_attached()
        # This run is told from the earlier one, and the downtime between them is shown.
        connected = page.locator("#chart_connected")
        await expect(connected.locator(".gap").first).to_be_attached()
        # One gap spans the restart (a busy machine may add another, where a snapshot was late).
        spans = [
            (
                float(await gap.get_attribute("data-from") or 0),
                float(await gap.get_attribute("data-to") or 0),
            )
            for gap in await connected.locator(".gap").all()
        ]
        assert [span for span in spans if span[0] < hub.started_at < span[1]], spans
        await expect(connected.locator(".run-start")).to_have_count(1)
        await expect(connected.locator(".earlier").first).to_be_attached()
        await expect(page.locator("#history_title")).to_contain_text("hub down")
        await page.screenshot(path=str(tmp_path / "overview.png"), full_page=True)

        # Collaborations: this run only, unless asked; the earlier run's are marked as such.
        await page.click("nav a[data-route=collaborations]")
        await expect(page.locator("#collabs_table tbody tr").first).to_be_attached(
            timeout=UPDATE_TIMEOUT_MS
        )
        assert await page.locator("#collabs_table tr.earlier").count() == 0
        await page.check("#collabs_earlier")
        earlier_rows = page.locator("#collabs_table tr.earlier")
        await expect(earlier_rows.first).to_contain_text("earlier run")
        await expect(earlier_rows.first).to_contain_text("failed")  # the restart ended it
        await page.uncheck("#collabs_earlier")
        await expect(earlier_rows).to_have_count(0)
        await expect(page.locator("#collab_graph .edge").first).to_be_attached()

        # The AI table and one AI's page, by keyboard: focus a row, Enter.
        await page.click("nav a[data-route=ais]")
        row = page.locator("#ais_table tbody tr", has_text="AI_Node_2")
        await row.focus()
        await page.keyboard.press("Enter")
        await expect(page).to_have_url(re.compile(r"#/ai/AI_Node_2$"))
        await expect(page.locator("#ai_title")).to_have_text("AI_Node_2")
        await expect(page.locator("#ai_profile")).to_contain_text("graphics")
        await expect(page.locator("#ai_items tbody tr").first).to_be_attached(
            timeout=UPDATE_TIMEOUT_MS
        )
        await page.screenshot(path=str(tmp_path / "ai.png"), full_page=True)

        # The knowledge browser: filter by kind and contributor, open an item.
        await page.click("nav a[data-route=knowledge]")
        await page.select_option("#kkind", "component")
        await expect(page.locator("#kcontributor option[value=AI_Node_3]")).to_be_attached(
            timeout=UPDATE_TIMEOUT_MS
        )
        await page.select_option("#kcontributor", "AI_Node_3")
        table = page.locator("#knowledge_table")
        await expect(table).to_have_attribute(
            "data-query",
            re.compile(r"kind=component&contributor=AI_Node_3"),
            timeout=UPDATE_TIMEOUT_MS,
        )
        rows = table.locator("tbody tr")
        await expect(rows.first).to_be_attached(timeout=UPDATE_TIMEOUT_MS)
        kinds = await page.locator("#knowledge_table tbody .kind").all_text_contents()
        assert kinds and set(kinds) == {"component"}
        contributors = await page.locator("#knowledge_table tbody a.id").all_text_contents()
        assert set(contributors) == {"AI_Node_3"}
        # Someone rates the first one: its page says who, and how.
        kind, item_id = (await rows.first.get_attribute("data-key") or ":").split(":", 1)
        rater = await login(hub, "AI_Node_5", "robotics")
        feedback = {"type": "FEEDBACK", "kind": kind, "id": item_id, "score": 0.8}
        await rater.send({"msg_id": "rate", **feedback})
        await rater.recv_type("ACK")
        await rater.close()
        # The trainers keep sharing, so a newer item can take the first row: open this one.
        rated_row = table.locator(f'tbody tr[data-key="{kind}:{item_id}"]')
        await rated_row.focus()
        await page.keyboard.press("Enter")
        item_route = f"#/knowledge/{kind}/{quote(item_id, safe='')}"
        await expect(page).to_have_url(re.compile(re.escape(item_route) + "$"))
        await expect(page.locator("#item_panel")).to_be_visible()
        await expect(page.locator("#item_data")).to_contain_text("val_accuracy")
        await expect(page.locator("#item_meta")).to_contain_text("AI_Node_3")
        rated_by = page.locator("#item_ratings tbody tr", has_text="AI_Node_5")
        await expect(rated_by).to_contain_text("0.8", timeout=UPDATE_TIMEOUT_MS)
        await page.screenshot(path=str(tmp_path / "knowledge.png"), full_page=True)

        # Dark on request, whatever the system says.
        await page.click("nav a[data-route=overview]")
        await page.click("#theme_toggle")  # auto -> light
        await page.click("#theme_toggle")  # light -> dark
        assert await page.evaluate("document.documentElement.dataset.theme") == "dark"
        await expect(page.locator("#learning_table tbody tr")).to_have_count(4)
        await page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
        if os.environ.get("KERNAL_SAVE_SCREENSHOT") == "1":
            (ROOT / "docs").mkdir(exist_ok=True)
            shutil.copyfile(tmp_path / "dashboard.png", ROOT / "docs" / "dashboard.png")
        assert problems == []
        await context.close()
    finally:
        for trainer in trainers:
            trainer.stop()
        await asyncio.gather(*runs, return_exceptions=True)
