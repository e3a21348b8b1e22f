"""Error codes the hub sends in ``ERROR`` frames, and the exception that carries them."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Machine-readable reason of an ``ERROR`` frame. Clients branch on these, never on the text."""

    BAD_JSON = "bad_json"
    NOT_AN_OBJECT = "not_an_object"
    UNKNOWN_TYPE = "unknown_type"
    INVALID_FIELD = "invalid_field"
    NOT_AUTHENTICATED = "not_authenticated"
    FRAME_TOO_LARGE = "frame_too_large"
    CONFLICT = "conflict"
    NOT_FOUND = "not_found"
    FORBIDDEN = "forbidden"
    # The hub failed to carry out a valid frame (e.g. the database is unreachable); nothing of
    # it was stored or relayed, and the client may retry.
    INTERNAL_ERROR = "internal_error"
    # Sent to a connection just before the hub closes it because the same AI connected again.
    # Clients must not reconnect on this code, or two processes would evict each other forever.
    REPLACED = "replaced"
    # Over a limit of this connection or address (frame or byte rate, connections): slow down.
    # Sent once when throttling starts (the frames are handled, later); with "disconnecting" in
    # the text when the abuse lasted too long, then the connection closes.
    RATE_LIMITED = "rate_limited"
    # No frame for the hub's idle timeout (see STATE.idle_timeout): send PING to stay.
    IDLE_TIMEOUT = "idle_timeout"
    # The token this connection logged in with was revoked, replaced (rotated) or expired while
    # it was connected; the hub closes the connection. Reconnecting needs the new token.
    TOKEN_REVOKED = "token_revoked"


#: Codes after which the hub closes the connection; after any other code it stays usable.
CLOSING_CODES = frozenset(
    {
        ErrorCode.NOT_AUTHENTICATED,
        ErrorCode.FRAME_TOO_LARGE,
        ErrorCode.REPLACED,
        ErrorCode.IDLE_TIMEOUT,
        ErrorCode.TOKEN_REVOKED,
    }
)


class ProtocolError(Exception):
    """A frame or message the hub rejects; ``ref`` is the client's ``msg_id`` if it had one."""

    def __init__(self, code: ErrorCode, reason: str, ref: str | None = None) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
        self.ref = ref


class FrameTooLarge(ProtocolError):
    """A line grew past the frame limit before its newline arrived."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            ErrorCode.FRAME_TOO_LARGE,
            f"frame exceeds the {limit}-byte limit; "
            "split the message or raise --max-frame on the hub",
        )
        self.limit = limit
