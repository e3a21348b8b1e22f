"""Relayed frames, built from what the client sent.

A relayed frame is the client's message with ``from`` set to the authenticated sender, plus
what the hub adds (a timestamp, the requester's standing...). The free-form values (a share's
data, a collaboration's result) are copied as the client's own JSON text
(:class:`~kernal.protocol.codec.RawFields`), never decoded and re-encoded: re-encoding can grow
a frame several times (``1e15`` becomes ``1000000000000000.0``), copying keeps a relay within
its frame's size plus the hub's own fields. The other fields are short and typed (ids, labels,
numbers the model checked) and are encoded from their values. Values the client left out get
the model's default.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

import msgspec

from kernal.protocol.codec import RawFields
from kernal.protocol.messages import RELAYED_FORMS, CollaborationRequest, Message, PatternShare

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_encode_string = json.encoder.encode_basestring  # C, as _ENCODER
_encode_json = msgspec.json.Encoder().encode
_NOT_RELAYED = frozenset({"msg_id", "to", "type"})
RAW_FIELDS = frozenset({"pattern_data", "component_data", "result"})
"""Free-form fields, relayed as the client's own text."""

# For each relayed client model: the opening of its frame, and (name, b',"name":') per field.
_OPENING: dict[type[Message], bytes] = {
    model: b'{"type":' + _ENCODER.encode(form.model_fields["type"].default).encode()
    for model, form in RELAYED_FORMS.items()
}
_FIELDS: dict[type[Message], tuple[tuple[str, bytes, bool], ...]] = {
    model: tuple(
        (name, b',"' + name.encode() + b'":', name in RAW_FIELDS)
        for name in model.model_fields
        if name not in _NOT_RELAYED
    )
    for model in RELAYED_FORMS
}


_PATTERN_OPENING = _OPENING[PatternShare] + b',"from":'
_PATTERN_ID, _PATTERN_DATA = (key for name, key, _ in _FIELDS[PatternShare])
if [name for name, _, _ in _FIELDS[PatternShare]] != ["pattern_id", "pattern_data"]:
    raise AssertionError("PatternShare's fields changed: update relay_body's fast path")

_REQUEST_OPENING = _OPENING[CollaborationRequest] + b',"from":'
_REQUEST_ID, _REQUEST_OFFERED, _REQUEST_SEEKING = (
    key for name, key, _ in _FIELDS[CollaborationRequest]
)
if [name for name, _, _ in _FIELDS[CollaborationRequest]] != [
    "request_id",
    "expertise_offered",
    "seeking_expertise",
]:
    raise AssertionError("CollaborationRequest's fields changed: update relay_request")


def encode_value(value: Any) -> bytes:
    """One JSON value, compact (as the hub encodes its own fields)."""
    kind = type(value)
    if kind is str:
        return _encode_string(value).encode("utf-8")
    if kind is float and value - value == 0.0:  # finite: what repr writes is valid JSON
        return repr(value).encode("ascii")
    if kind is bool:
        return b"true" if value else b"false"
    if kind is int:
        return str(value).encode("ascii")
    if kind is list and all(type(item) is str for item in value):
        # Labels (a request's expertise): msgspec writes strings as the encoder below does,
        # several times faster. Anything that could hold a float stays with the encoder,
        # which refuses NaN where msgspec would write null.
        return _encode_json(value)
    return _ENCODER.encode(value).encode("utf-8")


def relay_frame(message: Message, raw: RawFields | None, sender: str, **stamps: Any) -> bytes:
    """The encoded relayed form of ``message`` (see :func:`kernal.protocol.messages.relayed`
    for the same as a model): its fields bar ``msg_id`` and ``to``, ``from`` = ``sender``, then
    ``stamps``; ``None`` values are left out. Raises KeyError for a message never relayed."""
    return relay_body(message, raw, encode_value(sender)) + encode_stamps(stamps) + b"}\n"


def relay_body(message: Message, raw: RawFields | None, sender_json: bytes) -> bytes:
    """:func:`relay_frame` up to its stamps, without the closing brace; ``sender_json``: the
    sender as :func:`encode_value` encodes it (once for a run of frames of one sender)."""
    if type(message) is PatternShare and raw is not None:
        # The share a busy hub relays most, without the loop over its fields.
        data = raw("pattern_data")
        if data is not None:
            return b"".join(
                (
                    _PATTERN_OPENING,
                    sender_json,
                    _PATTERN_ID,
                    encode_value(message.pattern_id),
                    _PATTERN_DATA,
                    data,
                )
            )
    parts = [_OPENING[type(message)], b',"from":', sender_json]
    for name, key, free_form in _FIELDS[type(message)]:
        value = getattr(message, name)
        if value is None:
            continue
        text = raw(name) if free_form and raw is not None else None
        parts += (key, text if text is not None else encode_value(value))
    return b"".join(parts)


def request_head(sender_json: bytes) -> bytes:
    """The opening of every relayed ``COLLABORATION_REQUEST`` of one sender (``sender_json``:
    as :func:`encode_value` encodes it), for :func:`relay_request`."""
    return _REQUEST_OPENING + sender_json


def relay_request(message: CollaborationRequest, head: bytes, tail: bytes) -> bytes:
    """``relay_frame(message, raw, sender, **stamps)`` of a request, from the parts a run of
    requests of one sender has in common: ``head`` (:func:`request_head`) and ``tail``
    (``encode_stamps(stamps) + b"}\\n"``). Its fields are short and typed (an id, two lists
    of labels): encoded from their values, no raw text needed."""
    return b"".join(
        (
            head,
            _REQUEST_ID,
            _encode_string(message.request_id).encode("utf-8"),
            _REQUEST_OFFERED,
            _encode_json(message.expertise_offered),
            _REQUEST_SEEKING,
            _encode_json(message.seeking_expertise),
            tail,
        )
    )


def encode_stamps(stamps: dict[str, Any]) -> bytes:
    """The members ``,"name":value`` of what the hub adds to a relayed frame (None left out)."""
    parts: list[bytes] = []
    for name, value in stamps.items():
        if value is not None:
            key = _STAMP_KEYS.get(name)
            if key is None:
                key = _STAMP_KEYS[name] = b',"' + name.encode() + b'":'
            parts += (key, encode_value(value))
    return b"".join(parts)


_STAMP_KEYS: dict[str, bytes] = {}


def ack_frame(
    ref: str | None,
    of: str,
    item_id: str | None = None,
    *,
    collaboration_id: str | None = None,
    duplicate: bool | None = None,
) -> bytes:
    """The encoded ``ACK`` (the frame the hub sends most), as ``encode(Ack(...))`` would be."""
    of_json = _ACK_OF.get(of)
    if of_json is None:
        of_json = _ACK_OF[of] = b',"of":' + encode_value(of)
    if collaboration_id is None and duplicate is None and item_id is not None:
        # A share's ACK, the usual one: no list to build.
        head = _ACK_OPENING if ref is None else _ACK_REF + encode_value(ref)
        return head + of_json + b',"id":' + encode_value(item_id) + b"}\n"
    parts = [b'{"type":"ACK"']
    if ref is not None:
        parts += (b',"ref":', encode_value(ref))
    parts.append(of_json)
    if item_id is not None:
        parts += (b',"id":', encode_value(item_id))
    if collaboration_id is not None:
        parts += (b',"collaboration_id":', encode_value(collaboration_id))
    if duplicate is not None:
        parts += (b',"duplicate":', encode_value(duplicate))
    parts.append(b"}\n")
    return b"".join(parts)


_ACK_OPENING = b'{"type":"ACK"'
_ACK_REF = b'{"type":"ACK","ref":'
_ACK_OF: dict[str, bytes] = {}  # ',"of":"PATTERN_SHARE"' per frame type


def share_frame(
    message: Message, raw: RawFields | None, sender: str, now: float
) -> Callable[[bytes], bytes]:
    """The relayed ``message`` of ``sender`` stamped ``timestamp=now``, for the hub's replay
    log to close with its ``tail`` (``seq`` and the like, then ``}``)."""
    sender_json, stamp = encode_value(sender), encode_stamps({"timestamp": now})
    return functools.partial(relay_share, message, raw, sender_json, stamp)


def relay_share(
    message: Message, raw: RawFields | None, sender_json: bytes, stamp: bytes, tail: bytes
) -> bytes:
    """``relay_frame(message, raw, sender, timestamp=now)`` closed by ``tail``, from the parts
    a run of shares has in common (``encode_value(sender)``, ``encode_stamps({"timestamp":
    now})``)."""
    return relay_body(message, raw, sender_json) + stamp + tail
