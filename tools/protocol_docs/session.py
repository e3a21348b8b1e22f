"""The example session of docs/protocol.md: two AIs on one hub, frame by frame.

Pure data, read by :mod:`tools.protocol_docs.generator`, which checks every frame against the
codec; ``tests/protocol/test_docs.py`` checks that the transcript follows the reply rules.
"""

from __future__ import annotations

from dataclasses import dataclass

from tools.protocol_docs.data import COLLAB, JsonObject


@dataclass(frozen=True)
class Line:
    """One line of the example session: ``who`` is ``C1``/``S1``/``C2``/``S2`` or ``#``."""

    who: str
    frame: JsonObject | str


SESSION: list[Line] = [
    Line("#", "AI_Node_1 logs in (type may be left out of AUTH) and joins an empty hub."),
    Line("C1", {"ai_id": "AI_Node_1", "token": "secret1"}),
    Line("S1", {"type": "AUTH_OK", "ai_id": "AI_Node_1", "protocol_version": 1}),
    Line(
        "C1",
        {
            "type": "HELLO",
            "msg_id": "h1",
            "specialization": "networking",
            "capabilities": ["routing"],
            "protocol_version": 1,
        },
    ),
    Line(
        "S1",
        {
            "type": "STATE",
            "active_ais": [
                {"ai_id": "AI_Node_1", "specialization": "networking", "capabilities": ["routing"]}
            ],
            "knowledge_base": {
                "shared_patterns": 0,
                "shared_components": 0,
                "recent_patterns": [],
                "recent_components": [],
            },
        },
    ),
    Line("#", "AI_Node_2 logs in and joins; AI_Node_1 is told."),
    Line("C2", {"type": "AUTH", "ai_id": "AI_Node_2", "token": "secret2"}),
    Line("S2", {"type": "AUTH_OK", "ai_id": "AI_Node_2", "protocol_version": 1}),
    Line(
        "C2",
        {
            "type": "HELLO",
            "msg_id": "h1",
            "specialization": "security",
            "capabilities": ["encryption"],
            "protocol_version": 1,
        },
    ),
    Line(
        "S2",
        {
            "type": "STATE",
            "active_ais": [
                {"ai_id": "AI_Node_1", "specialization": "networking", "capabilities": ["routing"]},
                {
                    "ai_id": "AI_Node_2",
                    "specialization": "security",
                    "capabilities": ["encryption"],
                },
            ],
            "knowledge_base": {
                "shared_patterns": 0,
                "shared_components": 0,
                "recent_patterns": [],
                "recent_components": [],
            },
        },
    ),
    Line(
        "S1",
        {
            "type": "AI_JOINED",
            "ai_id": "AI_Node_2",
            "specialization": "security",
            "capabilities": ["encryption"],
        },
    ),
    Line("#", "AI_Node_1 shares a pattern: ACK to the sender, relay to the others."),
    Line(
        "C1",
        {
            "type": "PATTERN_SHARE",
            "msg_id": "m1",
            "pattern_id": "tcp-retry-backoff",
            "pattern_data": {"strategy": "exponential", "base_ms": 100},
        },
    ),
    Line("S1", {"type": "ACK", "ref": "m1", "of": "PATTERN_SHARE", "id": "tcp-retry-backoff"}),
    Line(
        "S2",
        {
            "type": "PATTERN_SHARE",
            "from": "AI_Node_1",
            "pattern_id": "tcp-retry-backoff",
            "pattern_data": {"strategy": "exponential", "base_ms": 100},
            "timestamp": 1732240012.5,
        },
    ),
    Line("#", "AI_Node_2 asks for help; AI_Node_1 accepts and the hub names the collaboration."),
    Line(
        "C2",
        {
            "type": "COLLABORATION_REQUEST",
            "msg_id": "m1",
            "request_id": "req-1",
            "expertise_offered": ["security"],
            "seeking_expertise": ["networking"],
        },
    ),
    Line(
        "S1",
        {
            "type": "COLLABORATION_REQUEST",
            "from": "AI_Node_2",
            "request_id": "req-1",
            "expertise_offered": ["security"],
            "seeking_expertise": ["networking"],
            "specialization": "security",
        },
    ),
    Line("S2", {"type": "ACK", "ref": "m1", "of": "COLLABORATION_REQUEST", "id": "req-1"}),
    Line(
        "C1",
        {"type": "COLLABORATION_ACCEPT", "msg_id": "m2", "request_id": "req-1", "to": "AI_Node_2"},
    ),
    Line(
        "S2",
        {
            "type": "COLLABORATION_ACCEPT",
            "from": "AI_Node_1",
            "request_id": "req-1",
            "collaboration_id": COLLAB,
        },
    ),
    Line(
        "S1",
        {
            "type": "ACK",
            "ref": "m2",
            "of": "COLLABORATION_ACCEPT",
            "id": "req-1",
            "collaboration_id": COLLAB,
        },
    ),
    Line("#", "Progress goes to the partner."),
    Line(
        "C1",
        {
            "type": "COLLABORATION_PROGRESS",
            "msg_id": "m3",
            "collaboration_id": COLLAB,
            "progress": 50,
        },
    ),
    Line(
        "S2",
        {
            "type": "COLLABORATION_PROGRESS",
            "from": "AI_Node_1",
            "collaboration_id": COLLAB,
            "progress": 50.0,
        },
    ),
    Line("S1", {"type": "ACK", "ref": "m3", "of": "COLLABORATION_PROGRESS", "id": COLLAB}),
    Line("#", "AI_Node_1 delivers a component that completes the collaboration."),
    Line(
        "C1",
        {
            "type": "OS_COMPONENT_SHARE",
            "msg_id": "m4",
            "component_id": "secure-retry-client",
            "component_data": {"language": "python", "entry_point": "client.py"},
            "quality_score": 0.9,
            "to": "AI_Node_2",
            "collaboration_id": COLLAB,
            "collaboration_complete": True,
        },
    ),
    Line(
        "S1",
        {"type": "ACK", "ref": "m4", "of": "OS_COMPONENT_SHARE", "id": "secure-retry-client"},
    ),
    Line(
        "S2",
        {
            "type": "OS_COMPONENT_SHARE",
            "from": "AI_Node_1",
            "component_id": "secure-retry-client",
            "component_data": {"language": "python", "entry_point": "client.py"},
            "quality_score": 0.9,
            "collaboration_id": COLLAB,
            "collaboration_complete": True,
            "timestamp": 1732240031.0,
        },
    ),
    Line("#", "The collaboration is over: further progress on it is refused."),
    Line(
        "C2",
        {
            "type": "COLLABORATION_PROGRESS",
            "msg_id": "m2",
            "collaboration_id": COLLAB,
            "progress": 100,
        },
    ),
    Line(
        "S2",
        {
            "type": "ERROR",
            "code": "not_found",
            "error": f"no active collaboration '{COLLAB}'",
            "ref": "m2",
        },
    ),
    Line("#", "AI_Node_2 rates the component, checks the line, and leaves."),
    Line(
        "C2",
        {
            "type": "FEEDBACK",
            "msg_id": "m3",
            "kind": "component",
            "id": "secure-retry-client",
            "score": 0.95,
        },
    ),
    Line("S2", {"type": "ACK", "ref": "m3", "of": "FEEDBACK", "id": "secure-retry-client"}),
    Line("C2", {"type": "PING", "msg_id": "m4"}),
    Line("S2", {"type": "PONG", "ref": "m4"}),
    Line("#", "AI_Node_2 closes its socket."),
    Line("S1", {"type": "AI_LEFT", "ai_id": "AI_Node_2"}),
]
