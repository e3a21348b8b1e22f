"""Relayed frames are built from the client's own bytes, and say what the relayed models say."""

from __future__ import annotations

import json

import pytest

from kernal.protocol import decode_client_frame, decode_server_message, encode
from kernal.protocol.messages import RELAYED_FORMS, relayed
from kernal.protocol.relay import relay_frame

FRAMES = [
    b'{"type":"PATTERN_SHARE","msg_id":"m","pattern_id":"p","pattern_data":{"w":[1e15,2E-3]}}',
    b'{"type":"OS_COMPONENT_SHARE","component_id":"c","component_data":{},"quality_score":null,'
    b'"to":"AI_Node_2","extra":"ignored"}',
    b'{"type":"OS_COMPONENT_SHARE","component_id":"c","component_data":{"a" : [ 1 , 2 ]},'
    b'"quality_score":0.5,"collaboration_id":"k","collaboration_complete":true}',
    b'{"type":"COLLABORATION_REQUEST","request_id":"r","seeking_expertise":["gpu"]}',
    b'{"type":"COLLABORATION_ACCEPT","request_id":"r","to":"AI_Node_1"}',
    b'{"type":"COLLABORATION_REJECT","request_id":"r","to":"AI_Node_1","reason":"busy \\u00e9"}',
    b'{"type":"COLLABORATION_PROGRESS","collaboration_id":"k","progress":40}',
    b'{"type":"COLLABORATION_COMPLETE","collaboration_id":"k","result":{"ok":[true,null]}}',
    b'{"type":"COLLABORATION_FAILED","collaboration_id":"k","reason":"gave up"}',
]
STAMPS = {
    "PATTERN_SHARE": {"timestamp": 1.5},
    "OS_COMPONENT_SHARE": {"timestamp": 2.5},
    "COLLABORATION_REQUEST": {"specialization": "networking", "reputation": 0.25},
    "COLLABORATION_ACCEPT": {"collaboration_id": "k"},
}


@pytest.mark.parametrize("frame", FRAMES)
def test_relay_frame_says_what_the_relayed_model_says(frame: bytes) -> None:
    message, raw = decode_client_frame(frame)
    stamps = STAMPS.get(message.type, {})
    built = relay_frame(message, raw, "AI_Node_9", **stamps)
    assert built.endswith(b"\n") and built.count(b"\n") == 1
    modelled = encode(relayed(message, "AI_Node_9", **stamps))
    assert json.loads(built) == json.loads(modelled)
    assert decode_server_message(built) == decode_server_message(modelled)
    # Without the raw fields the same frame is encoded from the model.
    assert json.loads(relay_frame(message, None, "AI_Node_9", **stamps)) == json.loads(built)


def test_every_relayed_type_is_covered() -> None:
    covered = {decode_client_frame(frame)[0].type for frame in FRAMES}
    assert covered == {form.model_fields["type"].default for form in RELAYED_FORMS.values()}


def test_values_are_relayed_as_the_client_wrote_them() -> None:
    """Numbers are not re-encoded, so a relay never grows past its frame (``1e15`` stays 4
    bytes; encoded from a float it would be 18)."""
    data = b"[" + b",".join([b"1e15"] * 20_000) + b"]"
    frame = b'{"type":"PATTERN_SHARE","pattern_id":"p","pattern_data":{"w":' + data + b"}}"
    message, raw = decode_client_frame(frame)
    built = relay_frame(message, raw, "AI_Node_1", timestamp=1.0)
    assert data in built
    assert len(built) < len(frame) + 64
    assert len(encode(relayed(message, "AI_Node_1", timestamp=1.0))) > 3 * len(frame)


@pytest.mark.parametrize(
    "fields",
    [
        {"ref": "m1", "of": "PATTERN_SHARE", "id": 'p\u00e9"x'},
        {"ref": None, "of": "FEEDBACK", "id": "c"},
        {"ref": "m2", "of": "OS_COMPONENT_SHARE", "id": "c", "duplicate": True},
        {"ref": "m3", "of": "COLLABORATION_ACCEPT", "id": "r", "collaboration_id": "collab_1"},
    ],
)
def test_ack_frame_is_the_encoded_ack(fields: dict[str, object]) -> None:
    from kernal.protocol.messages import Ack
    from kernal.protocol.relay import ack_frame

    args = dict(fields)
    fast = ack_frame(
        args.pop("ref"),
        args.pop("of"),
        args.pop("id"),
        **args,  # type: ignore[arg-type]
    )
    assert json.loads(fast) == json.loads(encode(Ack(**fields)))  # type: ignore[arg-type]
