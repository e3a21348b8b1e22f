"""The fast path of client frame decoding (msgspec, for the frames a busy hub gets most) against
the careful one: whatever it accepts, the careful path accepts too, as the same model with the
same raw values; whatever it declines goes the careful way, so bad frames keep their ERRORs."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from kernal.protocol import ProtocolError, decode_client_frame, decode_server_message
from kernal.protocol.codec import _decode_careful, _decode_hot, _fast_json, _validate, parse_object
from kernal.protocol.messages import SERVER_MESSAGE_TYPES
from tests.protocol.fuzzing import client_objects, json_values, near_valid_shares
from tests.protocol.test_fuzz import FAST

HOT = ("PATTERN_SHARE", "OS_COMPONENT_SHARE", "COLLABORATION_REQUEST", "PING")
FREE_FORM = ("pattern_data", "component_data", "result")


def _agree(frame: bytes) -> None:
    fast = _decode_hot(frame)
    try:
        careful = _decode_careful(frame)
    except ProtocolError as exc:
        assert fast is None, f"fast path accepted what the careful one refuses: {exc.reason}"
        return
    if fast is None:
        return
    (message, raw), (expected, expected_raw) = fast, careful
    assert type(message) is type(expected)
    assert message == expected
    for key in FREE_FORM:
        assert raw.text_of(key) == expected_raw.text_of(key)
        assert raw(key) == expected_raw(key)
    assert decode_client_frame(frame)[0] == expected


def _mutations(frame: bytes) -> st.SearchStrategy[bytes]:
    """``frame`` with a few bytes inserted, replaced or removed: almost-JSON."""
    spot = st.integers(min_value=0, max_value=len(frame))
    chunk = st.sampled_from(
        [b"", b",", b"}", b"{", b"[", b'"', b"\\", b"\\ud800", b"1e400", b"NaN", b"\xff", b"\x01"]
    ) | st.binary(max_size=3)
    return st.builds(
        lambda at, cut, text: frame[:at] + text + frame[at + cut :], spot, st.integers(0, 3), chunk
    )


@FAST
@given(
    obj=near_valid_shares() | client_objects().map(lambda o: {**o, "type": HOT[len(o) % len(HOT)]})
)
def test_fast_path_agrees_with_the_careful_one(obj: dict[str, Any]) -> None:
    _agree(json.dumps(obj).encode())
    _agree(json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode())


@FAST
@given(data=st.data(), obj=near_valid_shares())
def test_fast_path_agrees_on_damaged_frames(data: st.DataObject, obj: dict[str, Any]) -> None:
    frame = json.dumps(obj).encode()
    _agree(data.draw(_mutations(frame)))


@FAST
@given(value=json_values, spelling=st.sampled_from(["1e400", "1" * 400, '"\\udc00"', "[" * 120]))
def test_what_the_careful_path_refuses_the_fast_one_declines(value: Any, spelling: str) -> None:
    damaged = spelling + "]" * spelling.count("[")
    data = '{"a":' + json.dumps(value) + ',"b":' + damaged + "}"
    frame = ('{"type":"PATTERN_SHARE","pattern_id":"p","pattern_data":' + data + "}").encode()
    assert _decode_hot(frame) is None
    _agree(frame)


# JSON numbers with exponents, around and past a double's range (1.7976931348623157e308) and
# below its smallest step: msgspec must refuse exactly those the careful path refuses.
exponent_numbers = st.from_regex(r"\A-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,24})?[eE][+-]?[0-9]{1,5}\Z")
boundary_numbers = st.sampled_from(
    [
        "1.7976931348623157e308",
        "1.7976931348623158e308",
        "1.7976931348623159e308",
        "17976931348623159e292",
        "-1E+400",
        "1e-400",
        "-0e999",
        "4.9e-324",
        "2e-324",
    ]
)


@FAST
@given(number=exponent_numbers | boundary_numbers)
def test_numbers_with_exponents_are_judged_as_the_careful_path_does(number: str) -> None:
    data = '{"w":[' + number + "]}"
    _agree(('{"type":"PATTERN_SHARE","pattern_id":"p","pattern_data":' + data + "}").encode())
    frame = (
        '{"type":"AI_JOINED","ai_id":"a","specialization":"s","capabilities":[],'
        '"reputation":' + number + "}"
    ).encode()
    _server_agrees(frame)


def test_ids_that_look_like_exponents_take_the_fast_path() -> None:
    # Hex ids often hold an "e" before three digits ("b023e5580f31"): not a number.
    frame = b'{"type":"PATTERN_SHARE","pattern_id":"AI_1_pattern_b023e5580f31_1","pattern_data":{}}'
    assert _decode_hot(frame) is not None
    assert _fast_json(b'{"type":"ACK","id":"x_1e999"}', None) == {"type": "ACK", "id": "x_1e999"}


def test_the_hot_frames_take_the_fast_path() -> None:
    frames = [
        b'{"type":"PATTERN_SHARE","msg_id":"m","pattern_id":"p","pattern_data":{"w":[1,2.5]}}',
        b'{"type":"OS_COMPONENT_SHARE","component_id":"c","component_data":{},"to":"AI_2"}',
        b'{"type":"COLLABORATION_REQUEST","request_id":"r","seeking_expertise":["vision"]}',
        b'{"type":"PING"}',
        b'{"type":"PING","msg_id":"7"}',
        b'{"pattern_data" : {"w" : 1} , "pattern_id":"p","type":"PATTERN_SHARE","extra":[null]}',
    ]
    for frame in frames:
        assert _decode_hot(frame) is not None
        _agree(frame)
    raw = _decode_hot(frames[-1])
    assert raw is not None and raw[1].text_of("pattern_data") == '{"w" : 1}'


def test_duplicate_keys_resolve_as_the_careful_path_does() -> None:
    frame = (
        b'{"type":"PATTERN_SHARE","pattern_id":"a","pattern_id":"b",'
        b'"pattern_data":{"x":1},"pattern_data":{"y":2}}'
    )
    _agree(frame)
    fast = _decode_hot(frame)
    assert fast is not None and fast[1].text_of("pattern_data") == '{"y":2}'


# ---------------------------------------------------------------- frames from the hub

SERVER_KINDS = sorted(SERVER_MESSAGE_TYPES)
_SERVER_FIELDS = sorted(
    {name for model in SERVER_MESSAGE_TYPES.values() for name in model.model_fields}
)


def _careful_server(frame: bytes) -> Any:
    """What :func:`decode_server_message` gave before its fast path: the careful parse."""
    obj = parse_object(frame, max_depth=None)
    model = SERVER_MESSAGE_TYPES.get(str(obj.get("type")))
    return obj if model is None else _validate(model, obj, None)


def _server_agrees(frame: bytes) -> None:
    try:
        expected = _careful_server(frame)
    except ProtocolError as exc:
        try:
            decode_server_message(frame)
        except ProtocolError as got:
            assert (got.code, got.reason) == (exc.code, exc.reason)
        else:
            raise AssertionError(f"the client accepted what the careful path refuses: {exc}")
        return
    got = decode_server_message(frame)
    assert type(got) is type(expected)
    assert got == expected


server_objects = st.builds(
    lambda kind, rest: {**rest, "type": kind},
    st.sampled_from([*SERVER_KINDS, "NOPE"]),
    st.dictionaries(st.sampled_from(_SERVER_FIELDS), json_values, max_size=8),
)


@FAST
@given(obj=server_objects)
def test_server_frames_decode_as_the_careful_path_does(obj: dict[str, Any]) -> None:
    _server_agrees(json.dumps(obj).encode())
    _server_agrees(json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode())


@FAST
@given(data=st.data(), obj=server_objects)
def test_damaged_server_frames_get_the_careful_paths_error(
    data: st.DataObject, obj: dict[str, Any]
) -> None:
    _server_agrees(data.draw(_mutations(json.dumps(obj).encode())))


@FAST
@given(value=json_values, spelling=st.sampled_from(["1e400", "1" * 400, '"\\udc00"', "NaN"]))
def test_what_the_careful_path_refuses_from_the_hub_the_fast_one_declines(
    value: Any, spelling: str
) -> None:
    frame = ('{"type":"PONG","a":' + json.dumps(value) + ',"b":' + spelling + "}").encode()
    assert _fast_json(frame, None) is None
    _server_agrees(frame)


def test_a_state_takes_the_fast_path_and_deep_data_is_not_limited() -> None:
    deep = "[" * 200 + "]" * 200
    frame = (
        '{"type":"STATE","active_ais":[{"ai_id":"a","specialization":"s","capabilities":[]}],'
        '"knowledge_base":{"shared_patterns":1,"shared_components":0,"recent_patterns":'
        '[{"pattern_id":"p","contributor":"a","pattern_data":{"w":' + deep + "}}],"
        '"recent_components":[]}}'
    ).encode()
    assert _fast_json(frame, None) is not None
    _server_agrees(frame)
