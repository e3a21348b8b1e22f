"""Codec: LineFramer, decode_auth, decode_client_message, decode_server_message and encode.

Bytes in, bytes or models out; no sockets.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from kernal.protocol import (
    DEFAULT_MAX_FRAME,
    ErrorCode,
    FrameTooLarge,
    LineFramer,
    ProtocolError,
    decode_auth,
    decode_client_message,
    decode_server_message,
    encode,
    encode_object,
    parse_object,
)
from kernal.protocol.codec import MAX_DEPTH
from kernal.protocol.messages import (
    Ack,
    AiInfo,
    AiJoined,
    AiLeft,
    Ais,
    Auth,
    AuthFailed,
    AuthOk,
    CollaborationAccept,
    CollaborationComplete,
    CollaborationFailed,
    CollaborationProgress,
    CollaborationReject,
    CollaborationRequest,
    ComponentShare,
    Error,
    Feedback,
    Hello,
    KnowledgeBase,
    ListAis,
    PatternShare,
    Ping,
    Pong,
    RejectedRequests,
    RelayedCollaborationAccept,
    RelayedCollaborationComplete,
    RelayedCollaborationFailed,
    RelayedCollaborationProgress,
    RelayedCollaborationReject,
    RelayedCollaborationRequest,
    RelayedComponentShare,
    RelayedPatternShare,
    ServerMessage,
    State,
    TrainerFigures,
)


def frame(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj).encode()


def rejected(call: Any, data: bytes) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        call(data)
    return info.value


# ------------------------------------------------------------------------------ LineFramer


def test_framer_one_byte_at_a_time() -> None:
    stream = b'{"type":"PING"}\n{"type":"HELLO","specialization":"x"}\n'
    framer = LineFramer()
    frames: list[bytes] = []
    for i in range(len(stream)):
        frames += framer.feed(stream[i : i + 1])
    assert frames == [b'{"type":"PING"}', b'{"type":"HELLO","specialization":"x"}']
    assert framer.pending == 0


def test_framer_several_frames_in_one_chunk_keeps_the_tail() -> None:
    framer = LineFramer()
    assert framer.feed(b"a\nbb\nccc\ndd") == [b"a", b"bb", b"ccc"]
    assert framer.pending == 2
    assert framer.feed(b"d\n") == [b"ddd"]
    assert framer.pending == 0


@pytest.mark.parametrize("cut", range(1, 20))
def test_framer_any_chunk_boundary(cut: int) -> None:
    stream = b'{"a":1}\r\n\n{"b":[2,3]}\n  \n{"c":"\\n"}\n'
    framer = LineFramer()
    frames = framer.feed(stream[:cut]) + framer.feed(stream[cut:])
    assert frames == [b'{"a":1}', b'{"b":[2,3]}', b'{"c":"\\n"}']


def test_framer_strips_crlf() -> None:
    framer = LineFramer()
    assert framer.feed(b"one\r\ntwo\r") == [b"one"]
    assert framer.feed(b"\n") == [b"two"]


def test_framer_skips_blank_lines() -> None:
    framer = LineFramer()
    assert framer.feed(b"\n\r\n   \n\t\nx\n\n") == [b"x"]


def test_framer_frame_of_exactly_max_frame_passes() -> None:
    framer = LineFramer(max_frame=10)
    assert framer.feed(b"a" * 10 + b"\n") == [b"a" * 10]
    # The '\r' of a CRLF terminator does not count against the limit.
    assert framer.feed(b"b" * 10 + b"\r\n") == [b"b" * 10]


def test_framer_frame_one_byte_over_raises() -> None:
    framer = LineFramer(max_frame=10)
    with pytest.raises(FrameTooLarge) as info:
        framer.feed(b"a" * 11 + b"\n")
    assert info.value.code is ErrorCode.FRAME_TOO_LARGE
    assert info.value.limit == 10


def test_framer_raises_before_the_newline_arrives() -> None:
    framer = LineFramer(max_frame=10)
    # max_frame + 1 pending bytes may still be a full frame followed by '\r'.
    assert framer.feed(b"a" * 11) == []
    with pytest.raises(FrameTooLarge):
        framer.feed(b"a")


def test_framer_raises_on_a_huge_chunk_without_newline() -> None:
    framer = LineFramer(max_frame=1000)
    with pytest.raises(FrameTooLarge):
        framer.feed(b"x" * 5000)


def test_framer_raises_when_the_buffer_grows_one_byte_at_a_time() -> None:
    framer = LineFramer(max_frame=8)
    fed = 0
    with pytest.raises(FrameTooLarge):
        while fed < 100:
            framer.feed(b"z")
            fed += 1
    assert fed == 9  # the 10th byte (max_frame + 2 pending) raised


def test_framer_default_limit_is_one_mebibyte() -> None:
    assert DEFAULT_MAX_FRAME == 1024 * 1024
    framer = LineFramer()
    assert framer.max_frame == DEFAULT_MAX_FRAME
    big = b"x" * DEFAULT_MAX_FRAME
    assert framer.feed(big + b"\n") == [big]
    with pytest.raises(FrameTooLarge):
        framer.feed(big + b"xx")


@pytest.mark.parametrize("limit", [0, -1])
def test_framer_rejects_a_non_positive_limit(limit: int) -> None:
    with pytest.raises(ValueError):
        LineFramer(max_frame=limit)


# ------------------------------------------------------------------------------ decode_auth


@pytest.mark.parametrize(
    "data",
    [
        b'{"ai_id":"AI_Node_1","token":"secret1"}',
        b'{"type":"AUTH","ai_id":"AI_Node_1","token":"secret1"}',
        b'{"type":"AUTH","ai_id":"AI_Node_1","token":"secret1","msg_id":"a","future":1}',
    ],
)
def test_decode_auth_accepts(data: bytes) -> None:
    auth = decode_auth(data)
    assert isinstance(auth, Auth)
    assert (auth.ai_id, auth.token) == ("AI_Node_1", "secret1")


@pytest.mark.parametrize("ai_id", ["a", "A-z_0.9:x@y", "x" * 128])
def test_decode_auth_accepts_every_allowed_ai_id(ai_id: str) -> None:
    assert decode_auth(frame({"ai_id": ai_id, "token": "t"})).ai_id == ai_id


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"\xff\xfe",
        b"[1,2]",
        b'"AUTH"',
        b"null",
        b'{"type":"HELLO","ai_id":"a","token":"t"}',
        b'{"type":"PING"}',
        b'{"type":null,"ai_id":"a","token":"t"}',
        b'{"type":"auth","ai_id":"a","token":"t"}',
        b'{"ai_id":"AI_Node_1"}',
        b'{"token":"secret1"}',
        b'{"ai_id":"AI_Node_1","token":""}',
        b'{"ai_id":"AI_Node_1","token":12345}',
        b'{"ai_id":"","token":"t"}',
        b'{"ai_id":"has space","token":"t"}',
        b'{"ai_id":"slash/no","token":"t"}',
        b'{"ai_id":"\xc3\xa9t\xc3\xa9","token":"t"}',
        b'{"ai_id":"a\\nb","token":"t"}',
        b'{"ai_id":7,"token":"t"}',
        frame({"ai_id": "x" * 129, "token": "t"}),
        frame({"ai_id": "a", "token": "t" * 1025}),
    ],
)
def test_decode_auth_rejects_with_not_authenticated(data: bytes) -> None:
    error = rejected(decode_auth, data)
    assert error.code is ErrorCode.NOT_AUTHENTICATED
    assert error.reason


def test_decode_auth_reports_the_wrong_type() -> None:
    error = rejected(decode_auth, b'{"type":"HELLO","specialization":"x","msg_id":"m"}')
    assert "HELLO" in error.reason
    assert error.ref == "m"


# ------------------------------------------------------------------------------ valid frames

VALID_CLIENT_FRAMES: list[tuple[dict[str, Any], type[Any]]] = [
    ({"type": "HELLO", "specialization": "networking"}, Hello),
    (
        {
            "type": "HELLO",
            "specialization": "networking",
            "capabilities": ["routing", "tcp"],
            "protocol_version": 1,
            "msg_id": "h1",
        },
        Hello,
    ),
    ({"type": "PATTERN_SHARE", "pattern_id": "p1", "pattern_data": {}}, PatternShare),
    (
        {"type": "PATTERN_SHARE", "pattern_id": "p1", "pattern_data": {"a": [1, 2.5, None]}},
        PatternShare,
    ),
    (
        {"type": "OS_COMPONENT_SHARE", "component_id": "c1", "component_data": {"x": 1}},
        ComponentShare,
    ),
    (
        {
            "type": "OS_COMPONENT_SHARE",
            "component_id": "c1",
            "component_data": {},
            "quality_score": 1,
            "to": "AI_Node_2",
            "collaboration_id": "collab_1",
            "collaboration_complete": True,
        },
        ComponentShare,
    ),
    ({"type": "COLLABORATION_REQUEST", "request_id": "r1"}, CollaborationRequest),
    (
        {
            "type": "COLLABORATION_REQUEST",
            "request_id": "r1",
            "expertise_offered": ["security"],
            "seeking_expertise": ["networking"],
            "to": "AI_Node_1",
        },
        CollaborationRequest,
    ),
    ({"type": "COLLABORATION_ACCEPT", "request_id": "r1", "to": "AI_Node_2"}, CollaborationAccept),
    ({"type": "COLLABORATION_REJECT", "request_id": "r1", "to": "AI_Node_2"}, CollaborationReject),
    (
        {"type": "COLLABORATION_REJECT", "request_id": "r1", "to": "a", "reason": "busy"},
        CollaborationReject,
    ),
    (
        {"type": "COLLABORATION_PROGRESS", "collaboration_id": "c", "progress": 0},
        CollaborationProgress,
    ),
    (
        {"type": "COLLABORATION_PROGRESS", "collaboration_id": "c", "progress": 100.0},
        CollaborationProgress,
    ),
    ({"type": "COLLABORATION_COMPLETE", "collaboration_id": "c"}, CollaborationComplete),
    (
        {"type": "COLLABORATION_COMPLETE", "collaboration_id": "c", "result": [1, {"k": "v"}]},
        CollaborationComplete,
    ),
    (
        {"type": "COLLABORATION_FAILED", "collaboration_id": "c", "reason": ""},
        CollaborationFailed,
    ),
    ({"type": "FEEDBACK", "kind": "pattern", "id": "p1"}, Feedback),
    ({"type": "FEEDBACK", "kind": "component", "id": "c1", "score": 0.0}, Feedback),
    ({"type": "FEEDBACK", "kind": "component", "id": "c1", "usefulness": 1}, Feedback),
    ({"type": "TRAINER_REPORT", "accuracy": 1}, TrainerFigures),
    (
        {
            "type": "TRAINER_REPORT",
            "accuracy": 0.5,
            "local_only_accuracy": 0.25,
            "centralized_baseline": 0.75,
            "merges_kept": 3,
            "merges_rejected": 0,
            "trust": {"AI_Node_2": 0, "AI_Node_3": 1.0},
            "final": True,
        },
        TrainerFigures,
    ),
    ({"type": "PING"}, Ping),
    ({"type": "PING", "msg_id": "x" * 128}, Ping),
    ({"type": "LIST_AIS"}, ListAis),
    ({"type": "LIST_AIS", "after": "AI_Node_3", "limit": 1000, "specialization": "gpu"}, ListAis),
    ({"type": "HELLO", "specialization": "s", "follow": ["requests", "presence"]}, Hello),
    ({"type": "HELLO", "specialization": "s", "follow": []}, Hello),
]


@pytest.mark.parametrize(("obj", "model"), VALID_CLIENT_FRAMES)
def test_decode_client_message_valid(obj: dict[str, Any], model: type[Any]) -> None:
    message = decode_client_message(frame(obj))
    assert type(message) is model
    for key, value in obj.items():
        assert getattr(message, key) == value


def test_every_client_type_has_a_valid_example() -> None:
    from kernal.protocol.messages import CLIENT_MESSAGE_TYPES

    covered = {obj["type"] for obj, _ in VALID_CLIENT_FRAMES}
    assert covered == set(CLIENT_MESSAGE_TYPES) - {"AUTH"}


def test_decode_client_message_defaults() -> None:
    hello = decode_client_message(b'{"type":"HELLO","specialization":"s"}')
    assert isinstance(hello, Hello)
    assert hello.capabilities == []
    assert hello.protocol_version == 1
    assert hello.msg_id is None
    share = decode_client_message(
        b'{"type":"OS_COMPONENT_SHARE","component_id":"c","component_data":{}}'
    )
    assert isinstance(share, ComponentShare)
    assert share.collaboration_complete is False
    assert share.quality_score is share.to is share.collaboration_id is None


def test_trainer_report_rejected_requests_decode_to_models() -> None:
    message = decode_client_message(
        b'{"type":"TRAINER_REPORT","accuracy":0.5,"rejected":{"AI_Node_2":{"count":2}}}'
    )
    assert isinstance(message, TrainerFigures)
    assert message.rejected == {"AI_Node_2": RejectedRequests(count=2, reason="low reputation")}


def test_null_counts_as_absent_for_optional_fields() -> None:
    message = decode_client_message(
        b'{"type":"FEEDBACK","kind":"pattern","id":"p","score":null,"msg_id":null}'
    )
    assert isinstance(message, Feedback)
    assert message.score is None
    assert message.msg_id is None


def test_unknown_fields_are_ignored() -> None:
    message = decode_client_message(
        b'{"type":"PING","msg_id":"m","shiny_new_field":{"deep":[1]},"v2":true}'
    )
    assert message == Ping(msg_id="m")


def test_hub_only_fields_sent_by_a_client_are_dropped() -> None:
    message = decode_client_message(
        frame(
            {
                "type": "PATTERN_SHARE",
                "pattern_id": "p",
                "pattern_data": {"contributor": "kept: it is inside the data"},
                "from": "someone_else",
                "contributor": "someone_else",
                "timestamp": 1.0,
                "sender": "someone_else",
            }
        )
    )
    dumped = message.model_dump(by_alias=True)
    for field in ("from", "sender", "contributor", "timestamp"):
        assert field not in dumped
        assert not hasattr(message, field)
    assert dumped["pattern_data"] == {"contributor": "kept: it is inside the data"}


def test_a_number_is_accepted_where_a_float_is_expected() -> None:
    message = decode_client_message(
        b'{"type":"COLLABORATION_PROGRESS","collaboration_id":"c","progress":50}'
    )
    assert isinstance(message, CollaborationProgress)
    assert message.progress == 50.0


# ------------------------------------------------------------------------------ error codes


@pytest.mark.parametrize(
    "data",
    [
        b"{",
        b"not json at all",
        b'{"type":"PING"',
        b"{'type':'PING'}",
        b'{"type":"PING",}',
        b'{"type":"PING"} trailing',
        b"\xff\xfe\xfd",
        b'{"type":"PING","x":"\xc3"}',
        b'{"type":"PING","x":"\xed\xa0\x80"}',  # an encoded surrogate is not UTF-8
        b'{"type":"PING","x":NaN}',
        b'{"type":"PING","x":Infinity}',
        b'{"type":"PING","x":-Infinity}',
        b'{"type":"PING","x":1e400}',
        b'{"type":"PING","x":-1e999}',
        b'{"type":"PING","x":"\\ud800"}',
        b'{"type":"PING","x":["\\udfff"]}',
        b'{"type":"PING","\\udc00":1}',
        b'{"type":"PING","x":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b"\xef\xbb\xbf" + b'{"type":"PING"}',  # no byte order mark
        b'{"type":"PING","x":' + b"1" * 5000 + b"}",
    ],
)
def test_bad_json(data: bytes) -> None:
    error = rejected(decode_client_message, data)
    assert error.code is ErrorCode.BAD_JSON
    assert error.ref is None


def nested(levels: int) -> bytes:
    """A PING frame whose objects are nested ``levels`` deep, the frame itself included."""
    inner = levels - 1
    return b'{"type":"PING","msg_id":"m","x":' + b'{"a":' * inner + b"1" + b"}" * inner + b"}"


def test_nesting_limit() -> None:
    assert isinstance(decode_client_message(nested(MAX_DEPTH)), Ping)
    error = rejected(decode_client_message, nested(MAX_DEPTH + 1))
    assert error.code is ErrorCode.BAD_JSON
    assert "nested" in error.reason


def test_nesting_limit_counts_arrays() -> None:
    inner = MAX_DEPTH - 1
    ok = b'{"type":"PING","x":' + b"[" * inner + b"]" * inner + b"}"
    assert isinstance(decode_client_message(ok), Ping)
    bad = b'{"type":"PING","x":' + b"[" * MAX_DEPTH + b"]" * MAX_DEPTH + b"}"
    assert rejected(decode_client_message, bad).code is ErrorCode.BAD_JSON


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    message = decode_client_message(frame({"type": "PING", "msg_id": "[{" * 60}))
    assert isinstance(message, Ping)


def test_valid_surrogate_pairs_and_escaped_backslashes_pass() -> None:
    data = (
        b'{"type":"PATTERN_SHARE","pattern_id":"p","pattern_data":{"s":"\\ud83d\\ude00 \\\\ud800"}}'
    )
    message = decode_client_message(data)
    assert isinstance(message, PatternShare)
    assert message.pattern_data == {"s": "\U0001f600 \\ud800"}


def test_large_finite_numbers_pass_and_round_trip() -> None:
    data = (
        b'{"type":"PATTERN_SHARE","pattern_id":"p","pattern_data":{"f":1.5e308,"i":'
        + b"9" * 300
        + b"}}"
    )
    message = decode_client_message(data)
    assert isinstance(message, PatternShare)
    assert message.pattern_data["f"] == 1.5e308
    assert decode_client_message(encode(message)) == message


def test_integers_beyond_a_double_are_bad_json() -> None:
    """As the protocol reference says: what a reader holding doubles cannot keep is refused."""
    data = b'{"type":"PATTERN_SHARE","pattern_id":"p","pattern_data":{"i":' + b"9" * 400 + b"}}"
    error = rejected(decode_client_message, data)
    assert error.code is ErrorCode.BAD_JSON and "out of range" in error.reason


@pytest.mark.parametrize(
    "data", [b"[]", b'[{"type":"PING"}]', b'"PING"', b"42", b"1.5", b"null", b"true"]
)
def test_not_an_object(data: bytes) -> None:
    error = rejected(decode_client_message, data)
    assert error.code is ErrorCode.NOT_AN_OBJECT
    assert error.ref is None


@pytest.mark.parametrize("kind", ["PONG", "ACK", "STATE", "ping", "", "HELLO ", "SHARE"])
def test_unknown_type(kind: str) -> None:
    error = rejected(decode_client_message, frame({"type": kind, "msg_id": "m1"}))
    assert error.code is ErrorCode.UNKNOWN_TYPE
    assert error.ref == "m1"
    assert "PATTERN_SHARE" in error.reason  # the known types are listed


@pytest.mark.parametrize(
    "obj",
    [
        {"msg_id": "m"},
        {"type": None},
        {"type": 1},
        {"type": ["PING"]},
        {"type": {"name": "PING"}},
        {"type": True},
    ],
)
def test_missing_or_non_string_type_is_invalid_field(obj: dict[str, Any]) -> None:
    error = rejected(decode_client_message, frame(obj))
    assert error.code is ErrorCode.INVALID_FIELD
    assert "type" in error.reason


INVALID_FIELDS: list[tuple[dict[str, Any], str]] = [
    # required fields missing
    ({"type": "HELLO"}, "specialization"),
    ({"type": "PATTERN_SHARE", "pattern_id": "p"}, "pattern_data"),
    ({"type": "PATTERN_SHARE", "pattern_data": {}}, "pattern_id"),
    ({"type": "OS_COMPONENT_SHARE", "component_id": "c"}, "component_data"),
    ({"type": "COLLABORATION_REQUEST"}, "request_id"),
    ({"type": "COLLABORATION_ACCEPT", "request_id": "r"}, "to"),
    ({"type": "COLLABORATION_REJECT", "to": "a"}, "request_id"),
    ({"type": "COLLABORATION_PROGRESS", "collaboration_id": "c"}, "progress"),
    ({"type": "COLLABORATION_COMPLETE"}, "collaboration_id"),
    ({"type": "COLLABORATION_FAILED", "collaboration_id": "c"}, "reason"),
    ({"type": "FEEDBACK", "id": "p"}, "kind"),
    # string where a number is expected: never coerced
    ({"type": "COLLABORATION_PROGRESS", "collaboration_id": "c", "progress": "50"}, "progress"),
    (
        {
            "type": "OS_COMPONENT_SHARE",
            "component_id": "c",
            "component_data": {},
            "quality_score": "1",
        },
        "quality_score",
    ),
    ({"type": "FEEDBACK", "kind": "pattern", "id": "p", "score": "0.5"}, "score"),
    ({"type": "FEEDBACK", "kind": "pattern", "id": "p", "usefulness": "1"}, "usefulness"),
    ({"type": "HELLO", "specialization": "s", "protocol_version": "1"}, "protocol_version"),
    # number where a string is expected
    ({"type": "HELLO", "specialization": 5}, "specialization"),
    ({"type": "PATTERN_SHARE", "pattern_id": 1, "pattern_data": {}}, "pattern_id"),
    ({"type": "COLLABORATION_REQUEST", "request_id": 7}, "request_id"),
    ({"type": "COLLABORATION_ACCEPT", "request_id": "r", "to": 2}, "to"),
    ({"type": "COLLABORATION_PROGRESS", "collaboration_id": 3, "progress": 1}, "collaboration_id"),
    ({"type": "FEEDBACK", "kind": "pattern", "id": 9}, "id"),
    ({"type": "PING", "msg_id": 12}, "msg_id"),
    # bool is not a number, number is not a bool
    ({"type": "COLLABORATION_PROGRESS", "collaboration_id": "c", "progress": True}, "progress"),
    ({"type": "FEEDBACK", "kind": "pattern", "id": "p", "score": False}, "score"),
    ({"type": "HELLO", "specialization": "s", "protocol_version": True}, "protocol_version"),
    ({"type": "HELLO", "specialization": "s", "protocol_version": 1.0}, "protocol_version"),
    (
        {
            "type": "OS_COMPONENT_SHARE",
            "component_id": "c",
            "component_data": {},
            "collaboration_complete": 1,
        },
        "collaboration_complete",
    ),
    (
        {
            "type": "OS_COMPONENT_SHARE",
            "component_id": "c",
            "component_data": {},
            "collaboration_complete": "true",
        },
        "collaboration_complete",
    ),
    # out of range
    ({"type": "COLLABORATION_PROGRESS", "collaboration_id": "c", "progress": -0.1}, "progress"),
    ({"type": "COLLABORATION_PROGRESS", "collaboration_id": "c", "progress": 100.01}, "progress"),
    (
        {
            "type": "OS_COMPONENT_SHARE",
            "component_id": "c",
            "component_data": {},
            "quality_score": 1.5,
        },
        "quality_score",
    ),
    (
        {
            "type": "OS_COMPONENT_SHARE",
            "component_id": "c",
            "component_data": {},
            "quality_score": -1,
        },
        "quality_score",
    ),
    ({"type": "FEEDBACK", "kind": "pattern", "id": "p", "score": 1.0001}, "score"),
    ({"type": "FEEDBACK", "kind": "pattern", "id": "p", "score": -0.5}, "score"),
    ({"type": "FEEDBACK", "kind": "pattern", "id": "p", "usefulness": -0.1}, "usefulness"),
    ({"type": "FEEDBACK", "kind": "pattern", "id": "p", "usefulness": 1.5}, "usefulness"),
    ({"type": "FEEDBACK", "kind": "patterns", "id": "p"}, "kind"),
    ({"type": "TRAINER_REPORT"}, "accuracy"),
    ({"type": "TRAINER_REPORT", "accuracy": 1.01}, "accuracy"),
    ({"type": "TRAINER_REPORT", "accuracy": "0.5"}, "accuracy"),
    ({"type": "TRAINER_REPORT", "accuracy": True}, "accuracy"),
    ({"type": "TRAINER_REPORT", "accuracy": 0.5, "centralized_baseline": -1}, "centralized"),
    ({"type": "TRAINER_REPORT", "accuracy": 0.5, "merges_kept": 1.5}, "merges_kept"),
    ({"type": "TRAINER_REPORT", "accuracy": 0.5, "trust": {"a": "high"}}, "trust"),
    ({"type": "TRAINER_REPORT", "accuracy": 0.5, "trust": {"": 0.5}}, "trust"),
    ({"type": "TRAINER_REPORT", "accuracy": 0.5, "rejected": {"a": {"count": -2}}}, "rejected"),
    ({"type": "TRAINER_REPORT", "accuracy": 0.5, "final": "yes"}, "final"),
    # structured fields
    ({"type": "PATTERN_SHARE", "pattern_id": "p", "pattern_data": [1, 2]}, "pattern_data"),
    ({"type": "PATTERN_SHARE", "pattern_id": "p", "pattern_data": "x"}, "pattern_data"),
    ({"type": "PATTERN_SHARE", "pattern_id": "p", "pattern_data": None}, "pattern_data"),
    ({"type": "OS_COMPONENT_SHARE", "component_id": "c", "component_data": 3}, "component_data"),
    ({"type": "HELLO", "specialization": "s", "capabilities": "tcp"}, "capabilities"),
    ({"type": "HELLO", "specialization": "s", "capabilities": ["tcp", 5]}, "capabilities"),
    ({"type": "HELLO", "specialization": "s", "capabilities": [""]}, "capabilities"),
    ({"type": "HELLO", "specialization": "s", "capabilities": {"a": 1}}, "capabilities"),
    ({"type": "HELLO", "specialization": "s", "capabilities": ["x"] * 257}, "capabilities"),
    (
        {"type": "COLLABORATION_REQUEST", "request_id": "r", "seeking_expertise": [None]},
        "seeking_expertise",
    ),
    (
        {"type": "COLLABORATION_REQUEST", "request_id": "r", "expertise_offered": "x"},
        "expertise_offered",
    ),
    # lengths
    ({"type": "PATTERN_SHARE", "pattern_id": "", "pattern_data": {}}, "pattern_id"),
    ({"type": "PATTERN_SHARE", "pattern_id": "p" * 257, "pattern_data": {}}, "pattern_id"),
    (
        {"type": "OS_COMPONENT_SHARE", "component_id": "c" * 257, "component_data": {}},
        "component_id",
    ),
    ({"type": "COLLABORATION_REQUEST", "request_id": "r" * 257}, "request_id"),
    ({"type": "COLLABORATION_ACCEPT", "request_id": "r", "to": "a" * 129}, "to"),
    ({"type": "COLLABORATION_ACCEPT", "request_id": "r", "to": "bad id"}, "to"),
    ({"type": "COLLABORATION_COMPLETE", "collaboration_id": "c" * 257}, "collaboration_id"),
    ({"type": "COLLABORATION_FAILED", "collaboration_id": "c", "reason": "r" * 2049}, "reason"),
    (
        {"type": "COLLABORATION_REJECT", "request_id": "r", "to": "a", "reason": "r" * 2049},
        "reason",
    ),
    ({"type": "HELLO", "specialization": "s" * 129}, "specialization"),
    ({"type": "HELLO", "specialization": ""}, "specialization"),
    ({"type": "HELLO", "specialization": "s", "capabilities": ["c" * 129]}, "capabilities"),
    ({"type": "FEEDBACK", "kind": "pattern", "id": "i" * 257}, "id"),
    ({"type": "PING", "msg_id": "m" * 129}, "msg_id"),
    ({"type": "PING", "msg_id": ""}, "msg_id"),
    ({"type": "HELLO", "specialization": "s", "follow": ["everything"]}, "follow"),
    ({"type": "HELLO", "specialization": "s", "follow": "requests"}, "follow"),
    ({"type": "LIST_AIS", "limit": 0}, "limit"),
    ({"type": "LIST_AIS", "limit": 1001}, "limit"),
    ({"type": "LIST_AIS", "after": "bad id"}, "after"),
]


@pytest.mark.parametrize(("obj", "field"), INVALID_FIELDS)
def test_invalid_field(obj: dict[str, Any], field: str) -> None:
    error = rejected(decode_client_message, frame(obj))
    assert error.code is ErrorCode.INVALID_FIELD
    assert error.reason.startswith(field), error.reason


def test_invalid_field_names_every_offending_field() -> None:
    error = rejected(
        decode_client_message,
        frame({"type": "OS_COMPONENT_SHARE", "component_id": 1, "component_data": [], "to": "?"}),
    )
    for field in ("component_id", "component_data", "to"):
        assert field in error.reason
    assert "\n" not in error.reason


@pytest.mark.parametrize(
    ("obj", "code"),
    [
        ({"type": "NOPE", "msg_id": "abc"}, ErrorCode.UNKNOWN_TYPE),
        ({"type": 5, "msg_id": "abc"}, ErrorCode.INVALID_FIELD),
        ({"msg_id": "abc"}, ErrorCode.INVALID_FIELD),
        ({"type": "COLLABORATION_PROGRESS", "msg_id": "abc"}, ErrorCode.INVALID_FIELD),
        ({"type": "AUTH", "ai_id": "a", "token": "t", "msg_id": "abc"}, ErrorCode.FORBIDDEN),
    ],
)
def test_ref_carries_a_string_msg_id(obj: dict[str, Any], code: ErrorCode) -> None:
    error = rejected(decode_client_message, frame(obj))
    assert error.code is code
    assert error.ref == "abc"


def test_ref_carries_even_an_over_long_msg_id() -> None:
    # The msg_id itself is invalid, but it is a string the client can still match.
    error = rejected(decode_client_message, frame({"type": "PING", "msg_id": "m" * 200}))
    assert error.code is ErrorCode.INVALID_FIELD
    assert error.ref == "m" * 200


@pytest.mark.parametrize("msg_id", [7, 1.5, None, True, ["a"], {"a": 1}])
def test_no_ref_when_msg_id_is_not_a_string(msg_id: Any) -> None:
    error = rejected(decode_client_message, frame({"type": "NOPE", "msg_id": msg_id}))
    assert error.code is ErrorCode.UNKNOWN_TYPE
    assert error.ref is None


@pytest.mark.parametrize(
    "obj",
    [
        {"type": "AUTH", "ai_id": "AI_Node_1", "token": "secret1"},
        {"type": "AUTH"},  # forbidden before its fields are even looked at
    ],
)
def test_auth_after_login_is_forbidden(obj: dict[str, Any]) -> None:
    error = rejected(decode_client_message, frame(obj))
    assert error.code is ErrorCode.FORBIDDEN


def test_a_login_frame_without_type_is_invalid_after_login() -> None:
    error = rejected(decode_client_message, b'{"ai_id":"AI_Node_1","token":"secret1"}')
    assert error.code is ErrorCode.INVALID_FIELD


# ------------------------------------------------------------------------------ parse_object


def test_parse_object_returns_the_dict() -> None:
    assert parse_object(b'{"a":[1,{"b":null}]}') == {"a": [1, {"b": None}]}


def test_parse_object_depth_limit_is_adjustable() -> None:
    data = b'{"a":' * 5 + b"1" + b"}" * 5
    assert parse_object(data, max_depth=5)
    with pytest.raises(ProtocolError):
        parse_object(data, max_depth=4)
    assert parse_object(b'{"a":' * 300 + b"1" + b"}" * 300, max_depth=None)


# ------------------------------------------------------------------------------ encode

SERVER_EXAMPLES: list[ServerMessage] = [
    AuthOk(ai_id="AI_Node_1"),
    AuthFailed(error="invalid token"),
    State(
        active_ais=[AiInfo(ai_id="AI_Node_1", specialization="networking", capabilities=["tcp"])],
        knowledge_base=KnowledgeBase(
            shared_patterns=1,
            shared_components=0,
            recent_patterns=[{"pattern_id": "p", "contributor": "AI_Node_2", "pattern_data": {}}],
            recent_components=[],
        ),
    ),
    AiJoined(ai_id="AI_Node_2", specialization="security", capabilities=[]),
    AiLeft(ai_id="AI_Node_2"),
    Ack(of="PING"),
    Ack(ref="m1", of="COLLABORATION_ACCEPT", id="r1", collaboration_id="collab_1"),
    Ack(ref="m2", of="PATTERN_SHARE", id="p1", duplicate=True),
    Error(code="invalid_field", error="progress: Input should be a valid number", ref="m3"),
    Error(code="frame_too_large", error="too big"),
    Pong(ref="m4"),
    Pong(),
    RelayedPatternShare(sender="AI_Node_1", pattern_id="p", pattern_data={"k": [1]}, timestamp=1.5),
    RelayedComponentShare(
        sender="AI_Node_1", component_id="c", component_data={}, quality_score=0.5, timestamp=2.0
    ),
    RelayedCollaborationRequest(
        sender="AI_Node_1",
        request_id="r",
        expertise_offered=["a"],
        seeking_expertise=["b"],
        specialization="networking",
    ),
    RelayedCollaborationAccept(sender="AI_Node_1", request_id="r", collaboration_id="collab_1"),
    RelayedCollaborationReject(sender="AI_Node_1", request_id="r", reason="busy"),
    RelayedCollaborationProgress(sender="AI_Node_1", collaboration_id="c", progress=42.5),
    RelayedCollaborationComplete(sender="AI_Node_1", collaboration_id="c", result={"ok": True}),
    RelayedCollaborationFailed(sender="AI_Node_1", collaboration_id="c", reason="gone"),
    Ais(ais=[AiInfo(ai_id="A", specialization="s", capabilities=[])], next="A", active_total=9),
    Ais(ref="m", ais=[], active_total=0),
]


@pytest.mark.parametrize("message", SERVER_EXAMPLES, ids=lambda m: type(m).__name__)
def test_encode_is_one_compact_line(message: ServerMessage) -> None:
    data = encode(message)
    assert data.endswith(b"\n")
    assert data.count(b"\n") == 1
    compact = json.dumps(json.loads(data), separators=(",", ":"), ensure_ascii=False)
    assert data == compact.encode() + b"\n"
    assert json.loads(data)["type"] == message.type  # type: ignore[attr-defined]


@pytest.mark.parametrize("message", SERVER_EXAMPLES, ids=lambda m: type(m).__name__)
def test_encode_round_trips_through_decode_server_message(message: ServerMessage) -> None:
    data = encode(message)
    decoded = decode_server_message(data.rstrip(b"\n"))
    assert decoded == message
    assert type(decoded) is type(message)


def test_relayed_messages_use_the_from_alias() -> None:
    data = json.loads(
        encode(
            RelayedPatternShare(sender="AI_Node_1", pattern_id="p", pattern_data={}, timestamp=1.0)
        )
    )
    assert data["from"] == "AI_Node_1"
    assert "sender" not in data


def test_encode_omits_none_fields() -> None:
    assert json.loads(encode(Ack(of="PING"))) == {"type": "ACK", "of": "PING"}
    assert json.loads(encode(Pong())) == {"type": "PONG"}
    relayed = json.loads(encode(RelayedCollaborationReject(sender="a", request_id="r")))
    assert relayed == {"type": "COLLABORATION_REJECT", "from": "a", "request_id": "r"}


def test_encode_keeps_false_and_empty_values() -> None:
    data = json.loads(
        encode(
            RelayedComponentShare(sender="a", component_id="c", component_data={}, timestamp=0.0)
        )
    )
    assert data["collaboration_complete"] is False
    assert data["component_data"] == {}
    assert "quality_score" not in data


def test_encode_non_ascii_stays_one_valid_utf8_line() -> None:
    message = RelayedPatternShare(
        sender="a", pattern_id="p", pattern_data={"text": "héllo\nwörld \u2028 😀"}, timestamp=1.0
    )
    data = encode(message)
    assert data.count(b"\n") == 1
    assert decode_server_message(data[:-1]) == message


@pytest.mark.parametrize(("obj", "model"), VALID_CLIENT_FRAMES)
def test_client_models_round_trip_through_encode(obj: dict[str, Any], model: type[Any]) -> None:
    message = decode_client_message(frame(obj))
    assert decode_client_message(encode(message)[:-1]) == message


def test_encode_object() -> None:
    assert encode_object({"type": "PING", "x": [1, "é"]}) == b'{"type":"PING","x":[1,"\\u00e9"]}\n'
    with pytest.raises(ValueError):
        encode_object({"x": float("nan")})


# -------------------------------------------------------------------------- decode_server_message


def test_decode_server_message_returns_a_dict_for_unknown_types() -> None:
    assert decode_server_message(b'{"type":"NEWS","x":1}') == {"type": "NEWS", "x": 1}
    assert decode_server_message(b'{"no_type":true}') == {"no_type": True}
    assert decode_server_message(b'{"type":5}') == {"type": 5}


def test_decode_server_message_ignores_unknown_fields() -> None:
    message = decode_server_message(b'{"type":"AI_LEFT","ai_id":"a","since":3}')
    assert message == AiLeft(ai_id="a")


def test_decode_server_message_reads_from() -> None:
    message = decode_server_message(
        b'{"type":"COLLABORATION_PROGRESS","from":"AI_Node_2","collaboration_id":"c","progress":5}'
    )
    assert isinstance(message, RelayedCollaborationProgress)
    assert message.sender == "AI_Node_2"
    assert message.progress == 5.0


def test_decode_server_message_allows_deep_hub_frames() -> None:
    deep = b'{"a":' * (MAX_DEPTH + 10) + b"1" + b"}" * (MAX_DEPTH + 10)
    data = (
        b'{"type":"PATTERN_SHARE","from":"a","pattern_id":"p","timestamp":1,"pattern_data":'
        + deep
        + b"}"
    )
    message = decode_server_message(data)
    assert isinstance(message, RelayedPatternShare)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"nope", ErrorCode.BAD_JSON),
        (b"[]", ErrorCode.NOT_AN_OBJECT),
        (b'{"type":"ACK"}', ErrorCode.INVALID_FIELD),
        (b'{"type":"AUTH_OK"}', ErrorCode.INVALID_FIELD),
    ],
)
def test_decode_server_message_errors(data: bytes, code: ErrorCode) -> None:
    assert rejected(decode_server_message, data).code is code
