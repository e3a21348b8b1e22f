"""What a big listing costs the hub: the measured problem of issue 8, re-run.

Fills a fresh SQLite store with ``--items`` components of ``--size`` bytes of data each (the
hub's largest by default, 512 KiB), starts the real hub with its dashboard on loopback, and
asks ``GET /api/components?limit=500`` ``--parallel`` times at once, then follows one listing
to its end. Prints, as one JSON object: bytes per answer, seconds, the largest stall of the
event loop while answering (a timer that should fire every 10 ms), and the process's peak RSS.

    .venv/bin/python bench/http_api.py --items 500 --size 524288 --parallel 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import tempfile
import time
from pathlib import Path

import httpx

from kernal.config import HubSettings
from kernal.serve import start_service
from kernal.storage import ComponentRecord, SqlStore


async def fill(db: str, items: int, size: int) -> None:
    store = SqlStore(db)
    await store.open()
    try:
        blob = "w" * size
        for first in range(0, items, 10):  # a few at a time: the fill must not set peak RSS
            await asyncio.gather(
                *(
                    store.add_component(ComponentRecord(f"c{n:05d}", {"w": blob}, "b", 1e9 + n))
                    for n in range(first, min(first + 10, items))
                )
            )
    finally:
        await store.close()


async def stall_watch(stop: asyncio.Event, worst: list[float]) -> None:
    """The longest the loop took to run a 10 ms timer, late by how much."""
    while not stop.is_set():
        started = time.perf_counter()
        await asyncio.sleep(0.01)
        worst[0] = max(worst[0], time.perf_counter() - started - 0.01)


async def main(items: int, size: int, parallel: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as folder:
        db = str(Path(folder) / "bench.db")
        await fill(db, items, size)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        service = await start_service(HubSettings(port=0, dashboard_port=0, db=db))
        try:
            assert service.dashboard_address is not None
            host, port = service.dashboard_address
            stop, worst = asyncio.Event(), [0.0]
            watcher = asyncio.create_task(stall_watch(stop, worst))
            async with httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=120) as http:
                started = time.perf_counter()
                answers = await asyncio.gather(
                    *(http.get("/api/components?limit=500") for _ in range(parallel))
                )
                parallel_seconds = time.perf_counter() - started
                pages, total, url = 0, 0, "/api/components?limit=500"
                started = time.perf_counter()
                while url:
                    page = await http.get(url)
                    pages += 1
                    total += len(page.json())
                    link = page.headers.get("link")
                    url = link[1 : link.index(">")] if link else ""
                walk_seconds = time.perf_counter() - started
            stop.set()
            await watcher
        finally:
            await service.stop()
    return {
        "items": items,
        "data_bytes_each": size,
        "parallel": parallel,
        "bytes_per_answer": [len(a.content) for a in answers],
        "entries_per_answer": [len(a.json()) for a in answers],
        "parallel_seconds": round(parallel_seconds, 3),
        "walk_pages": pages,
        "walk_entries": total,
        "walk_seconds": round(walk_seconds, 3),
        "worst_loop_stall_seconds": round(worst[0], 3),
        "peak_rss_mib_before_hub": round(rss_before / 1024, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--size", type=int, default=512 * 1024)
    parser.add_argument("--parallel", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.items, args.size, args.parallel))))
