"""Protocol v1: message models, framing codec and error codes. Pure code, no I/O."""

from kernal.protocol.codec import (
    DEFAULT_MAX_FRAME,
    LineFramer,
    decode_auth,
    decode_client_frame,
    decode_client_message,
    decode_server_message,
    encode,
    encode_object,
    parse_object,
)
from kernal.protocol.errors import CLOSING_CODES, ErrorCode, FrameTooLarge, ProtocolError
from kernal.protocol.messages import *  # noqa: F403
from kernal.protocol.messages import PROTOCOL_VERSION, ClientMessage, ServerMessage

__all__ = [
    "CLOSING_CODES",
    "DEFAULT_MAX_FRAME",
    "PROTOCOL_VERSION",
    "ClientMessage",
    "ErrorCode",
    "FrameTooLarge",
    "LineFramer",
    "ProtocolError",
    "ServerMessage",
    "decode_auth",
    "decode_client_frame",
    "decode_client_message",
    "decode_server_message",
    "encode",
    "encode_object",
    "parse_object",
]
