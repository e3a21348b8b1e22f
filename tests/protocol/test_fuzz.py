"""Property-based fuzzing of framing, validation and relaying (hypothesis).

Whatever bytes arrive: the framer splits them the same way however they are chunked and never
buffers past its limit; decoding gives a typed message or a ProtocolError, nothing else; a
relayed frame is valid JSON, carries the client's own free-form values, and is never larger
than what the client sent plus the hub's own fields. ``bench/fuzz.py`` runs the same
properties for longer, and against a live hub.
"""

from __future__ import annotations

import json
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernal.protocol import FrameTooLarge, LineFramer, ProtocolError, decode_client_frame
from kernal.protocol.messages import CLIENT_MESSAGE_TYPES, RELAYED_FORMS
from kernal.protocol.relay import relay_frame
from tests.protocol.fuzzing import RELAY_OVERHEAD, client_objects, json_values

# bench/fuzz.py runs these same properties at length through KERNAL_FUZZ_EXAMPLES.
EXAMPLES = int(os.environ.get("KERNAL_FUZZ_EXAMPLES", "300"))
FAST = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _expected_frames(lines: list[bytes]) -> tuple[list[bytes], int]:
    frames, blank = [], 0
    for line in lines:
        line = line.removesuffix(b"\r")
        if line and not line.isspace():
            frames.append(line)
        else:
            blank += 1
    return frames, blank


@FAST
@given(
    lines=st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=30),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=10),
)
def test_framing_does_not_depend_on_how_bytes_are_chunked(
    lines: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(line + b"\n" for line in lines)
    framer = LineFramer(max_frame=1000)
    got: list[bytes] = []
    start = 0
    for cut in [*sorted(c for c in cuts if c < len(stream)), len(stream)]:
        got += framer.feed(stream[start:cut])
        start = cut
    frames, blank = _expected_frames(lines)
    assert got == frames
    assert framer.blank_lines == blank
    assert framer.pending == 0


@FAST
@given(chunks=st.lists(st.binary(max_size=300), max_size=20), limit=st.integers(1, 64))
def test_framer_never_buffers_past_its_limit(chunks: list[bytes], limit: int) -> None:
    framer = LineFramer(max_frame=limit)
    for chunk in chunks:
        try:
            frames = framer.feed(chunk)
        except FrameTooLarge:
            assert framer.error is not None
            return
        assert all(len(frame) <= limit for frame in frames)
        assert framer.pending <= limit + 1
        if framer.error is not None:
            return


@FAST
@given(frame=st.binary(max_size=400))
def test_decoding_arbitrary_bytes_gives_a_message_or_a_protocol_error(frame: bytes) -> None:
    try:
        message, _ = decode_client_frame(frame)
    except ProtocolError as exc:
        assert exc.reason and exc.code
    else:
        assert message.type in CLIENT_MESSAGE_TYPES


@FAST
@given(obj=client_objects())
def test_decoding_near_valid_frames_gives_a_message_or_a_protocol_error(
    obj: dict[str, Any],
) -> None:
    frame = json.dumps(obj).encode()
    try:
        message, raw = decode_client_frame(frame)
    except ProtocolError as exc:
        assert exc.reason and exc.code
        return
    if type(message) not in RELAYED_FORMS:
        return
    relayed = relay_frame(message, raw, "AI_Sender", timestamp=1.5)
    assert relayed.endswith(b"\n") and relayed.count(b"\n") == 1
    out = json.loads(relayed)
    assert out["from"] == "AI_Sender" and out["type"] == obj["type"]
    for field in ("pattern_data", "component_data", "result"):
        # Only the fields of this type: another type's field is ignored (tolerant reader), not
        # relayed (bench/fuzz.py found a COLLABORATION_COMPLETE carrying component_data).
        if field in type(message).model_fields and obj.get(field) is not None:
            assert out[field] == obj[field]  # the client's own values, as sent
    assert len(relayed) <= len(frame) + RELAY_OVERHEAD


@FAST
@given(value=json_values)
def test_free_form_numbers_are_relayed_as_their_own_text(value: Any) -> None:
    frame = json.dumps(
        {"type": "PATTERN_SHARE", "pattern_id": "p", "pattern_data": {"v": value}}
    ).encode()
    try:
        message, raw = decode_client_frame(frame)
    except ProtocolError:
        return  # e.g. an integer past a double's range, or nesting too deep
    relayed = relay_frame(message, raw, "AI_Sender")
    assert raw("pattern_data") is not None and raw("pattern_data") in relayed
