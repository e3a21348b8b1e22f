"""Strategies for fuzzing client frames: shared by the test suite and ``bench/fuzz.py``."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from kernal.protocol.messages import CLIENT_MESSAGE_TYPES

# What the hub adds to a relayed frame at most: "from" (an AI id of up to 128 characters) and
# its stamps (timestamp, seq, the requester's standing).
RELAY_OVERHEAD = 400

json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

_FIELD_NAMES = sorted(
    {name for model in CLIENT_MESSAGE_TYPES.values() for name in model.model_fields}
    | {"ai_id", "token", "follow", "resume"}
)


def client_objects() -> st.SearchStrategy[dict[str, Any]]:
    """JSON objects that look like client messages: a known (or unknown) type, and known
    field names with values of any JSON type."""
    kinds = st.sampled_from([*CLIENT_MESSAGE_TYPES, "NOPE", ""])
    fields = st.dictionaries(st.sampled_from(_FIELD_NAMES), json_values, max_size=8)
    return st.builds(lambda kind, rest: {**rest, "type": kind}, kinds, fields)


def _share(kind: str, ident: str, data: Any, mutation: str, key: str, value: Any) -> dict[str, Any]:
    id_key, data_key = (
        ("pattern_id", "pattern_data")
        if kind == "PATTERN_SHARE"
        else ("component_id", "component_data")
    )
    obj: dict[str, Any] = {"type": kind, id_key: ident, data_key: data}
    target = {"id": id_key, "data": data_key}.get(key, key)
    if mutation == "drop":
        obj.pop(target, None)
    elif mutation == "replace":
        obj[target] = value
    return obj


def near_valid_shares() -> st.SearchStrategy[dict[str, Any]]:
    """Valid PATTERN_SHARE / OS_COMPONENT_SHARE objects, half of them with one field dropped or
    replaced by any JSON value: frames a real client might get almost right, so that both the
    hub's ACKs and its refusals are exercised."""
    return st.builds(
        _share,
        st.sampled_from(["PATTERN_SHARE", "OS_COMPONENT_SHARE"]),
        st.text(min_size=1, max_size=30),
        st.dictionaries(st.text(max_size=8), json_values, max_size=4),
        st.sampled_from(["none", "none", "drop", "replace"]),
        st.sampled_from(["type", "id", "data", "quality_score", "to", "collaboration_id"]),
        json_values,
    )
