"""Relayed frames, built from what the client sent.

A relayed frame is the client's message with ``from`` set to the authenticated sender, plus
what the hub adds (a timestamp, the requester's standing...). Values the client sent are copied
as the client's own JSON text (:class:`~kernal.protocol.codec.RawFields`), never decoded and
re-encoded: a relay costs a join of byte strings, and it is never larger than the frame it came
from by more than the hub's own fields (re-encoding can grow a frame several times: ``1e15``
becomes ``1000000000000000.0``). Values the client left out get the model's default.
"""

from __future__ import annotations

import json
from typing import Any

from kernal.protocol.codec import RawFields
from kernal.protocol.messages import RELAYED_FORMS, Message

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_NOT_RELAYED = frozenset({"msg_id", "to", "type"})

# For each relayed client model: the opening of its frame, and (name, b',"name":') per field.
_OPENING: dict[type[Message], bytes] = {
    model: b'{"type":' + _ENCODER.encode(form.model_fields["type"].default).encode()
    for model, form in RELAYED_FORMS.items()
}
_FIELDS: dict[type[Message], tuple[tuple[str, bytes], ...]] = {
    model: tuple(
        (name, b',"' + name.encode() + b'":')
        for name in model.model_fields
        if name not in _NOT_RELAYED
    )
    for model in RELAYED_FORMS
}


def encode_value(value: Any) -> bytes:
    """One JSON value, compact (as the hub encodes its own fields)."""
    return _ENCODER.encode(value).encode("utf-8")


def relay_frame(message: Message, raw: RawFields | None, sender: str, **stamps: Any) -> bytes:
    """The encoded relayed form of ``message`` (see :func:`kernal.protocol.messages.relayed`
    for the same as a model): its fields bar ``msg_id`` and ``to``, ``from`` = ``sender``, then
    ``stamps``; ``None`` values are left out. Raises KeyError for a message never relayed."""
    parts = [_OPENING[type(message)], b',"from":', encode_value(sender)]
    for name, key in _FIELDS[type(message)]:
        value = getattr(message, name)
        if value is None:
            continue
        text = raw(name) if raw is not None else None
        parts += (key, text if text is not None else encode_value(value))
    for name, value in stamps.items():
        if value is not None:
            parts += (b',"', name.encode(), b'":', encode_value(value))
    parts.append(b"}\n")
    return b"".join(parts)
