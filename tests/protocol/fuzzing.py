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
