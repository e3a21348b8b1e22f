"""Test helpers: a raw newline-JSON client for byte-level protocol tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
from ssl import SSLContext
from typing import Any

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from kernal.hub.server import Hub
from kernal.storage.sql import database_url


class RawClient:
    """A bare TCP client speaking newline-delimited JSON, for protocol tests at the byte level."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, hub: Hub, *, ssl: SSLContext | None = None) -> RawClient:
        return await cls.connect_to(*hub.address, ssl=ssl)

    @classmethod
    async def connect_to(cls, host: str, port: int, *, ssl: SSLContext | None = None) -> RawClient:
        reader, writer = await asyncio.open_connection(host, port, limit=2**24, ssl=ssl)
        return cls(reader, writer)

    async def send_bytes(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send(self, obj: dict[str, Any]) -> None:
        await self.send_bytes(json.dumps(obj).encode() + b"\n")

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        line = await asyncio.wait_for(self.reader.readline(), timeout)
        if not line:
            raise ConnectionError("hub closed the connection")
        result: dict[str, Any] = json.loads(line)
        return result

    async def recv_type(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        """Skip frames until one of type ``kind`` arrives."""
        while True:
            message = await self.recv(timeout)
            if message.get("type") == kind:
                return message

    async def expect_closed(self, timeout: float = 5.0) -> None:
        data = await asyncio.wait_for(self.reader.read(), timeout)
        assert data == b"" or data.endswith(b"\n")
        assert await asyncio.wait_for(self.reader.read(), timeout) == b""

    async def login(
        self, ai_id: str, token: str, specialization: str = "networking"
    ) -> dict[str, Any]:
        """AUTH + HELLO; returns the STATE frame."""
        await self.send({"ai_id": ai_id, "token": token})
        reply = await self.recv()
        assert reply["type"] == "AUTH_OK", reply
        await self.send({"type": "HELLO", "specialization": specialization, "capabilities": ["x"]})
        return await self.recv_type("STATE")

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()


async def login(hub: Hub, ai_id: str, specialization: str = "networking") -> RawClient:
    """A raw client logged in with the demo token of ``AI_Node_N``."""
    client = await RawClient.connect(hub)
    await client.login(ai_id, f"secret{ai_id.rsplit('_', 1)[1]}", specialization)
    settle = getattr(hub, "settle", None)  # several replicas as one hub: until all know it
    if settle is not None:
        await settle(ai_id)
    return client


def query(hub: Hub, sql: str, **params: Any) -> list[sa.Row[Any]]:
    """Rows of ``sql`` (``:name`` parameters) read from the hub's real database, whichever
    backend it is: what a test checks was stored, not what the hub says it stored."""
    engine = sa.create_engine(database_url(hub.settings.db), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(sql), params).all())
    finally:
        engine.dispose()
