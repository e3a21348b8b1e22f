"""Slow HTTP clients against the dashboard: the measured problem of issue 8, re-run.

Opens ``--clients`` connections to a real hub's dashboard on loopback that each send a request
line and one header, then a byte a second, never finishing. Asks ``/status`` meanwhile, and
reports how many the server closed and when (they should all go at ``--web-request-timeout``,
10 s by default). Prints one JSON object.

    .venv/bin/python bench/http_slow_clients.py --clients 500
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
import time
from pathlib import Path

import httpx

from kernal.config import HubSettings
from kernal.serve import start_service


async def trickle(host: str, port: int, closed: list[float], stop: asyncio.Event) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET /status HTTP/1.1\r\nHost: localhost\r\n")
    started = time.perf_counter()
    try:
        while not stop.is_set():
            writer.write(b"X")
            await writer.drain()
            with contextlib.suppress(TimeoutError):
                if await asyncio.wait_for(reader.read(100), 1.0) == b"":
                    closed.append(time.perf_counter() - started)
                    return
    except (ConnectionError, OSError):
        closed.append(time.perf_counter() - started)
    finally:
        writer.close()


async def main(clients: int, wait: float) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as folder:
        service = await start_service(
            HubSettings(port=0, dashboard_port=0, db=str(Path(folder) / "bench.db"))
        )
        try:
            assert service.dashboard_address is not None
            host, port = service.dashboard_address
            closed: list[float] = []
            stop = asyncio.Event()
            tasks = [asyncio.create_task(trickle(host, port, closed, stop)) for _ in range(clients)]
            await asyncio.sleep(2)
            async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as http:
                started = time.perf_counter()
                during = await http.get("/status")
                during_seconds = time.perf_counter() - started
                await asyncio.sleep(wait)
            stop.set()
            await asyncio.gather(*tasks)
        finally:
            await service.stop()
    return {
        "clients": clients,
        "status_while_trickling": during.status_code,
        "status_seconds": round(during_seconds, 3),
        "closed_by_server": len(closed),
        "closed_after_seconds": [round(min(closed), 2), round(max(closed), 2)] if closed else None,
        "watched_seconds": 2 + wait,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--wait", type=float, default=10.0, help="seconds after the /status")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.clients, args.wait))))
