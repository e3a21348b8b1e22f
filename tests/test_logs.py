"""Log lines cannot be forged: whatever a client puts in its fields, one event is one line."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from kernal.logs import PlainFormatter, one_line
from tests.conftest import HubFactory
from tests.helpers import RawClient, login

FORGED = "x\n2026-12-01 00:00:00,000 INFO    kernal: [+] AI Trainer authenticated: AI_Admin"


@pytest.fixture
def hub_log() -> Iterator[io.StringIO]:
    """The hub's log as the CLI writes it (the plain formatter), captured."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(PlainFormatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("kernal")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(previous)


def test_control_characters_are_escaped() -> None:
    assert one_line("a\nb\r\x1b[31m\u2028c\td") == "a\\nb\\r\\x1b[31m\\u2028c\\td"
    assert one_line("plain text, café") == "plain text, café"


async def test_client_fields_cannot_start_a_log_line(
    make_hub: HubFactory, hub_log: io.StringIO
) -> None:
    hub = await make_hub()
    client = await login(hub, "AI_Node_1", specialization=FORGED)
    await client.send({"type": "PATTERN_SHARE", "pattern_id": FORGED, "pattern_data": {}})
    await client.recv_type("ACK")
    await client.send({"type": "COLLABORATION_COMPLETE", "collaboration_id": FORGED})
    await client.recv_type("ERROR")  # not a member: logged with the id it quoted
    await client.close()
    bad = await RawClient.connect(hub)
    await bad.send({"ai_id": "AI_Node_2", "token": FORGED})
    await bad.recv_type("AUTH_FAILED")
    await bad.close()
    lines = hub_log.getvalue().splitlines()
    assert any("\\n2026-12-01" in line for line in lines)  # the fields were logged, escaped
    assert not [line for line in lines if line.startswith("2026-12-01")]
    assert all(line.split(" ", 1)[0] in {"INFO", "WARNING", "ERROR"} for line in lines)
