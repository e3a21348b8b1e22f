"""The dashboard of a replica, in Debian's Chromium: its cards count the whole cluster and a
badge says how many replicas there are and which one serves the page."""

from __future__ import annotations

from playwright.async_api import Browser, expect

from tests.cluster.conftest import ReplicaFactory, eventually
from tests.cluster.test_relay import join
from tests.helpers import RawClient
from tests.web.test_dashboard_browser import browser, chromium  # noqa: F401 (fixtures)


async def test_the_cards_count_the_cluster(
    make_replica: ReplicaFactory,
    clients: list[RawClient],
    browser: Browser,  # noqa: F811
) -> None:
    first = await make_replica(dashboard_port=0)
    second = await make_replica()
    await eventually(lambda: len(first.hub.cluster.replicas()) == 2)  # type: ignore[union-attr]
    await join(first, "AI_Node_1", clients)
    await join(second, "AI_Node_2", clients)
    await join(second, "AI_Node_3", clients)
    assert first.web is not None
    host, port = first.web.address
    page = await browser.new_page()
    await page.goto(f"http://{host}:{port}/")
    await expect(page.locator("#connected_ais")).to_have_text("3", timeout=15_000)
    badge = page.locator("#cluster_badge")
    await expect(badge).to_have_text("2 replicas · this is r1")
    (h1, p1), (h2, p2) = first.hub.address, second.hub.address
    title = f"r1 ({h1}:{p1}): 1 AIs\nr2 ({h2}:{p2}): 2 AIs"
    await expect(badge).to_have_attribute("title", title)
    await page.close()
