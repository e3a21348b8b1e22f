"""``kernal report``: the HTML of a real small run holds its charts and tables; PNGs beside it
(matplotlib is a dev dependency)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from typer.testing import CliRunner

from kernal.cli import app
from kernal.reports import collaboration_timeline
from kernal.storage import CollaborationStatus
from tests.conftest import HubFactory
from tests.reports.small_run import make_small_run

runner = CliRunner()


async def test_report_of_a_small_run(tmp_path: Path, make_hub: HubFactory) -> None:
    db = str(tmp_path / "hub_data.db")
    hub = await make_small_run(make_hub, db)
    out = tmp_path / "out" / "report.html"
    # In a thread: the command runs its own event loop.
    result = await asyncio.to_thread(runner.invoke, app, ["report", db, "--out", str(out)])
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    titles = re.findall(r'<svg class="chart" role="img"[^>]*><title>([^<]+)</title>', html)
    assert titles == ["Stats history", "Collaborations", "Top patterns", "Top components"]
    assert "no data" not in html
    # Stats history: one step line per figure, a step (two points) per snapshot after the first.
    snapshots = len(await _history(db))
    lines = re.findall(r'data-name="([^"]+)"[^>]*points="([^"]+)"', html)
    stats = {name: pts.split() for name, pts in lines[:4]}
    assert set(stats) == {
        "connected ais",
        "shared patterns",
        "shared components",
        "active collaborations",
    }
    # (and the last held to the end of the axis when a collaboration ended after it)
    assert all(len(points) in (2 * snapshots - 1, 2 * snapshots) for points in stats.values())
    assert ">seconds</text>" in html  # a run of a few seconds is drawn in seconds
    assert [name for name, _ in lines[4:]] == ["active", "completed", "failed"]
    # Top patterns: the rated one first; tables name the AIs.
    bars = re.findall(r'<rect class="bar"[^>]*><title>([^<]+)</title>', html)
    # (its two FEEDBACKs come from one rater: one use, one vote)
    assert bars[0] == "tcp-1: 1" and "shader-1: 1" in bars
    assert "AI_Node_1" in html and "graphics" in html
    assert "1 completed, 1 failed" in html
    assert "<script" not in html and "http://" not in html.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )  # self-contained
    pngs = sorted(p.name for p in out.parent.glob("*.png"))
    assert pngs == [
        "report-collaborations.png",
        "report-stats.png",
        "report-top-components.png",
        "report-top-patterns.png",
    ]
    assert all((out.parent / name).read_bytes()[:4] == b"\x89PNG" for name in pngs)
    assert hub.store is not None


async def _history(db: str) -> list[object]:
    from kernal.storage.sql import SqlStore
    from tests.storage.test_store_contract import opened

    async with opened(SqlStore(db)) as store:
        return list(await store.stats_history(0.0, 100_000))


def test_report_of_a_missing_database(tmp_path: Path) -> None:
    result = runner.invoke(app, ["report", str(tmp_path / "nope.db")])
    assert result.exit_code == 2
    assert "no database at" in result.output


def test_collaboration_timeline_counts_by_status() -> None:
    from kernal.protocol.messages import RequestTerms
    from kernal.storage import CollaborationRecord

    def collab(cid: str, start: float, end: float | None, status: CollaborationStatus) -> object:
        return CollaborationRecord(
            cid, "r", "a", "b", RequestTerms(request_id="r"), status, 0.0, start, end
        )

    timeline = collaboration_timeline(
        [
            collab("1", 10.0, 20.0, CollaborationStatus.COMPLETED),  # type: ignore[list-item]
            collab("2", 15.0, 30.0, CollaborationStatus.FAILED),  # type: ignore[list-item]
            collab("3", 25.0, None, CollaborationStatus.ACTIVE),  # type: ignore[list-item]
        ]
    )
    assert [(t, c["active"], c["completed"], c["failed"]) for t, c in timeline] == [
        (10.0, 1, 0, 0),
        (15.0, 2, 0, 0),
        (20.0, 1, 1, 0),
        (25.0, 2, 1, 0),
        (30.0, 1, 1, 1),
    ]
