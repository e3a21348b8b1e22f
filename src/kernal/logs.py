"""Logging setup shared by every command: one line per event, or JSON lines with ``--log-json``."""

from __future__ import annotations

import contextlib
import json
import logging
import logging.handlers
import queue
import re
import sys
from collections.abc import Iterator
from typing import Any

_PLAIN_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

# Line breaks and other control characters, the Unicode line separators included: a client
# that puts them in its id, specialization or a field quoted in an error must not be able to
# start a line of its own in the hub's log ("log forging").
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _escape(match: re.Match[str]) -> str:
    return match.group().encode("unicode_escape").decode("ascii")


def one_line(text: str) -> str:
    """``text`` with every control character written as its escape (``\\n``, ``\\x1b``...)."""
    return _CONTROL.sub(_escape, text)


class PlainFormatter(logging.Formatter):
    """One line per event, whatever the message's arguments contain; a traceback (ours, not
    the client's) keeps its lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return one_line(super().formatMessage(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers. ``extra={"ai_id": ...}`` fields are kept."""

    _STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message"}

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in self._STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_logging(*, level: str = "INFO", json_lines: bool = False) -> None:
    """Configure the root logger for a command-line run (idempotent)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else PlainFormatter(_PLAIN_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # uvicorn's access log would print a line for every 3-second dashboard poll.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    # uvicorn's and the MCP SDK's start-up chatter ("Waiting for application startup"...):
    # the hub logs the dashboard's address itself.
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    logging.getLogger("mcp").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


class _RenderedQueueHandler(logging.handlers.QueueHandler):
    """Hands records to the writing thread with their message rendered now (its arguments may
    change later) and everything else as it is, for the handlers there to format."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record.msg = record.message = record.getMessage()
        record.args = None
        return record


@contextlib.contextmanager
def logging_in_background() -> Iterator[None]:
    """While inside, the root logger's handlers format and write in a thread of their own, so a
    slow stderr (a loaded disk, a full pipe) never holds up the caller (the hub's event loop);
    on leaving, what is queued is written and the handlers are put back."""
    root = logging.getLogger()
    handlers = list(root.handlers)
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(records, *handlers, respect_handler_level=True)
    queued = _RenderedQueueHandler(records)
    for handler in handlers:
        root.removeHandler(handler)
    root.addHandler(queued)
    listener.start()
    try:
        yield
    finally:
        root.removeHandler(queued)
        listener.stop()
        for handler in handlers:
            root.addHandler(handler)
