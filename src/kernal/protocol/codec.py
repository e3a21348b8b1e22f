"""Framing and (de)serialisation: bytes in, typed messages out, and back. No I/O here.

A frame is one UTF-8 JSON object terminated by ``\\n``. :class:`LineFramer` splits a byte stream
into frames and enforces the size limit before buffering more than it allows; the ``decode_*``
functions turn one frame into a validated model or raise :class:`ProtocolError` with the code
and reason the hub sends back.
"""

from __future__ import annotations

import json
import json.scanner
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from pydantic import BaseModel, ValidationError

from kernal.protocol.errors import ErrorCode, FrameTooLarge, ProtocolError
from kernal.protocol.messages import (
    CLIENT_MESSAGE_TYPES,
    SERVER_MESSAGE_TYPES,
    Auth,
    ClientMessage,
    CollaborationRequest,
    ComponentShare,
    PatternShare,
    Ping,
    ServerMessage,
)

DEFAULT_MAX_FRAME = 1024 * 1024
"""Largest frame, in bytes without the newline, that either side accepts by default (1 MiB)."""

MAX_DEPTH = 100
"""Deepest nesting of objects and arrays in a client's frame; the frame's own object is level 1.

Far below what could still be serialised: the hub re-sends client data a few levels deeper (in
``STATE``) and pydantic refuses to serialise beyond about 255 levels.
"""


# Blank lines that follow a newline (so never the tail of a frame's own text).
_BLANK_RUN = re.compile(rb"(?<=\n)(?:[ \t\r]*\n)+")
# Where a blank line after a newline could start: one search with a literal first byte, in C
# (four ``in`` tests of the two-byte strings cost 4-10 times as much, small frames or large).
_BLANK_START = re.compile(rb"\n[\n \t\r]")
# What the one-pass split of LineFramer.feed leaves to its careful loop: a '\r' to strip, or
# whitespace the blank-run fold does not know (a line of only such characters is blank too).
_UNPLAIN = (b"\r", b"\x0b", b"\x0c")


class LineFramer:
    """Incremental splitter of a byte stream into newline-terminated frames.

    ``feed`` returns every complete frame (without its ``\\n`` or a trailing ``\\r``; blank lines
    are skipped) and keeps the incomplete tail. As soon as a frame is known to exceed
    ``max_frame`` bytes it stops: frames that completed before it are still returned, and the
    :class:`FrameTooLarge` is kept in :attr:`error` and raised by this call if it has nothing to
    return, else by the next one. So a peer cannot make us buffer without bound, and the valid
    frames it sent before the oversized one are not lost.
    """

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        if max_frame < 1:
            raise ValueError("max_frame must be positive")
        self.max_frame = max_frame
        self._buffer = bytearray()
        self.error: FrameTooLarge | None = None
        self.blank_lines = 0
        """Empty or whitespace-only lines skipped so far (they count against rate limits)."""

    def feed(self, data: bytes) -> list[bytes]:
        if self.error is not None:
            raise self.error
        if b"\n" not in data:
            # The middle of a line (a large frame comes in many reads): kept, not scanned again
            # with every read, so a frame costs its length once (it cost its length squared
            # over the read size before: 5 ms of a 500 KB frame in 64 KB reads).
            self._buffer += data
            if len(self._buffer) > self.max_frame + 1:  # +1: room for a '\r'
                return self._fail([])
            return []
        if self._buffer:
            self._buffer += data
            data = bytes(self._buffer)
        # Runs of blank lines are folded in C first, so a flood of them costs little; and
        # only looked for when a line could be blank (the regex costs more than the frames).
        if _BLANK_START.search(data) is not None:
            folded = _BLANK_RUN.sub(b"", data)
            if len(folded) != len(data):
                self.blank_lines += data.count(b"\n") - folded.count(b"\n")
                data = folded
        lines = data.split(b"\n")
        tail = lines.pop()
        limit = self.max_frame
        frames: list[bytes]
        if (
            lines
            and not any(c in data for c in _UNPLAIN)
            and (len(data) <= limit or max(map(len, lines)) <= limit)
        ):
            # The common case, in C: no '\r' to strip, and (the runs above folded) a blank line
            # can only be the first one. A read of 256 KB of small frames is thousands of them.
            frames = list(filter(None, lines))
            if lines[0].isspace():  # then it is frames[0]
                del frames[0]
            self.blank_lines += len(lines) - len(frames)
            self._buffer = bytearray(tail)
            if len(tail) > limit + 1:
                return self._fail(frames)
            return frames
        frames = []
        for line in lines:
            if len(line) > limit and not (len(line) == limit + 1 and line.endswith(b"\r")):
                return self._fail(frames)
            if line.endswith(b"\r"):
                line = line[:-1]
            if line and not line.isspace():
                frames.append(line)
        self.blank_lines += len(lines) - len(frames)
        self._buffer = bytearray(tail)
        if len(tail) > limit + 1:  # +1: room for a '\r' before the newline
            return self._fail(frames)
        return frames

    def _fail(self, frames: list[bytes]) -> list[bytes]:
        self.error = FrameTooLarge(self.max_frame)
        self._buffer.clear()
        if not frames:
            raise self.error
        return frames

    @property
    def pending(self) -> int:
        """Bytes buffered of a frame whose newline has not arrived yet."""
        return len(self._buffer)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _bounded_int(text: str) -> int:
    value = int(text)
    if abs(value) > _MAX_DOUBLE:  # beyond what any JSON reader holding doubles can keep
        raise ValueError(f"number {text[:20]}... is out of range")
    return value


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # e.g. 1e400: valid JSON, but neither storable nor sendable
        raise ValueError(f"number {text} is out of range")
    return value


_MAX_DOUBLE = int(sys.float_info.max)
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")
_LONE_SURROGATE = re.compile("[\\ud800-\\udfff]")


def _check_tree(value: Any, max_depth: int | None, strings: bool) -> None:
    """Reject what JSON can spell but UTF-8 JSON cannot carry on: nesting deeper than
    ``max_depth`` and (when ``strings``) lone UTF-16 surrogates such as ``"\\ud800"``."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
            if strings and any(_LONE_SURROGATE.search(key) for key in item):
                raise ValueError("a key contains a lone UTF-16 surrogate escape")
        elif isinstance(item, list):
            children = item
        else:
            if strings and isinstance(item, str) and _LONE_SURROGATE.search(item):
                raise ValueError("a string contains a lone UTF-16 surrogate escape")
            continue
        if max_depth is not None and depth > max_depth:
            raise RecursionError
        stack.extend((child, depth + 1) for child in children)


_CAREFUL = json.JSONDecoder(
    parse_constant=_reject_constant, parse_float=_finite_float, parse_int=_bounded_int
)
_FAST = json.JSONDecoder(parse_constant=_reject_constant)
_SCAN: Any = json.scanner.make_scanner(_FAST)  # type: ignore[arg-type]  # the C scanner
# Only an exponent of three digits or more, or 309 digits in a row, can overflow a double. To
# find them at C speed, every digit becomes 0, E becomes e and + disappears: what remains to
# look for is "e000" and a run of 309 zeros (maybe inside a string: then the careful parse
# just finds nothing wrong).
_NUMERIC = bytes.maketrans(b"123456789E", b"000000000e")
_HUGE_EXPONENT = b"e000"
_MANY_DIGITS = 309
_HUGE_DIGITS = b"0" * _MANY_DIGITS
# The same shape for the hot path's prechecks, with every "[" made a "{" as well: one count of
# "{" is then the nesting bound, and "\\u" (backslash and u are left alone) is looked for in it.
_HOT_SHAPE = bytes.maketrans(b"123456789E[", b"000000000e{")
_RAW_CANDIDATES = 8  # places a key's raw value is looked for before it is re-encoded instead


# Frames with these carry free-form values worth relaying as sent: they are parsed member by
# member, so the place of each value is known without a second look.
_FREE_FORM_KEYS = (b'_data"', b'"result"')
_BLANK = " \t\n\r"


@dataclass(slots=True)
class RawFields:
    """The frame as the client sent it, to relay its values without re-encoding them:
    ``raw(key)`` is the JSON text of the top-level value ``key``, as received.

    ``spans`` (from a member-by-member parse) says where each value lies. Without them, the
    span is found when first asked for: the first place the text spells ``"key": value`` with
    a value equal to the parsed one (a nested copy of the same value would do as well: it is
    the same value, in the client's own bytes). None if there is no such place, e.g. a key
    written with escapes: the caller encodes the value instead.
    """

    text: str
    obj: dict[str, Any]
    spans: dict[str, tuple[int, int]] | None = None
    given: dict[str, str] | None = None
    """Values' texts the decoder already has (the fast path's), looked up before ``spans``."""
    given_bytes: dict[str, bytes] | None = None
    """The same as UTF-8, for :meth:`__call__`."""

    def __call__(self, key: str) -> bytes | None:
        if self.given_bytes is not None and (given := self.given_bytes.get(key)) is not None:
            return given
        text = self.text_of(key)
        return None if text is None else text.encode("utf-8")

    def text_of(self, key: str) -> str | None:
        if self.given is not None and (given := self.given.get(key)) is not None:
            return given
        if key not in self.obj:
            return None
        if self.spans is None:
            self.spans = {}
        span = self.spans.get(key)
        if span is None:
            span = self._find(key)
            if span is None:
                return None
            self.spans[key] = span
        return self.text[span[0] : span[1]]

    def _find(self, key: str) -> tuple[int, int] | None:
        text, wanted = self.text, self.obj[key]
        needle = '"' + key + '"'
        start = 0
        for _ in range(_RAW_CANDIDATES):
            found = text.find(needle, start)
            if found < 0:
                return None
            start = found + len(needle)
            i = _skip_blank(text, start)
            if i >= len(text) or text[i] != ":":
                continue
            i = _skip_blank(text, i + 1)
            try:
                value, end = _SCAN(text, i)
            except StopIteration:
                continue
            if type(value) is type(wanted) and value == wanted:
                return i, end
        return None


def _skip_blank(text: str, i: int) -> int:
    while i < len(text) and text[i] in _BLANK:
        i += 1
    return i


def _top_level(text: str) -> tuple[dict[str, Any], dict[str, tuple[int, int]]] | None:
    """A JSON object parsed member by member with the C scanner, recording where each value
    lies; None if ``text`` is not a well-formed object (the caller re-parses to say why)."""
    scanstring = json.decoder.scanstring  # type: ignore[attr-defined]
    end = len(text)
    i = _skip_blank(text, 0)
    if i >= end or text[i] != "{":
        return None
    obj: dict[str, Any] = {}
    spans: dict[str, tuple[int, int]] = {}
    i = _skip_blank(text, i + 1)
    if i < end and text[i] == "}":
        return (obj, spans) if _skip_blank(text, i + 1) == end else None
    while True:
        if i >= end or text[i] != '"':
            return None
        key, i = scanstring(text, i + 1, True)
        i = _skip_blank(text, i)
        if i >= end or text[i] != ":":
            return None
        i = _skip_blank(text, i + 1)
        try:
            value, stop = _SCAN(text, i)
        except StopIteration:
            return None
        obj[key] = value
        spans[key] = (i, stop)
        i = _skip_blank(text, stop)
        if i < end and text[i] == "}":
            return (obj, spans) if _skip_blank(text, i + 1) == end else None
        if i >= end or text[i] != ",":
            return None
        i = _skip_blank(text, i + 1)


def parse_frame(
    frame: bytes, *, max_depth: int | None = MAX_DEPTH
) -> tuple[dict[str, Any], RawFields]:
    """Parse one frame into a JSON object and its raw fields, or raise ``bad_json`` /
    ``not_an_object``.

    Besides malformed JSON, ``bad_json`` covers what JSON can spell but the hub could neither
    store nor send on: ``NaN``/``Infinity``, numbers beyond the range of a double (integers
    included), lone UTF-16 surrogates, and nesting deeper than ``max_depth`` (``None``: only
    Python's recursion limit).
    """
    try:
        text = frame.decode("utf-8")
        shape = frame.translate(_NUMERIC, b"+")
        careful = _HUGE_EXPONENT in shape or _HUGE_DIGITS in shape
        spans = None
        parsed = None
        if not careful and any(key in frame for key in _FREE_FORM_KEYS):
            parsed = _top_level(text)
        if parsed is not None:
            value, spans = parsed
        else:  # also the way to the exact reason when the frame is not valid JSON
            value = (_CAREFUL if careful else _FAST).decode(text)
        deep = max_depth is not None and frame.count(b"{") + frame.count(b"[") > max_depth
        strings = _SURROGATE_ESCAPE.search(frame) is not None
        if deep or strings:
            _check_tree(value, max_depth, strings)
    except UnicodeDecodeError:
        raise ProtocolError(ErrorCode.BAD_JSON, "frame is not valid UTF-8") from None
    except RecursionError:
        limit = f" (limit: {max_depth} levels)" if max_depth is not None else ""
        raise ProtocolError(ErrorCode.BAD_JSON, f"JSON is nested too deeply{limit}") from None
    except ValueError as exc:
        raise ProtocolError(ErrorCode.BAD_JSON, f"frame is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ProtocolError(
            ErrorCode.NOT_AN_OBJECT, f"frame must be a JSON object, got {type(value).__name__}"
        )
    return value, RawFields(text, value, spans)


def parse_object(frame: bytes, *, max_depth: int | None = MAX_DEPTH) -> dict[str, Any]:
    """The JSON object of one frame (see :func:`parse_frame` for what is rejected)."""
    return parse_frame(frame, max_depth=max_depth)[0]


def _msg_id_of(obj: dict[str, Any]) -> str | None:
    msg_id = obj.get("msg_id")
    return msg_id if isinstance(msg_id, str) else None


def describe_validation_error(exc: ValidationError) -> str:
    """One readable line naming every offending field (``pattern_data: Input should be ...``)."""
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "message"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def _validate(model: type[BaseModel], obj: dict[str, Any], ref: str | None) -> Any:
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        raise ProtocolError(ErrorCode.INVALID_FIELD, describe_validation_error(exc), ref) from None


def decode_auth(frame: bytes) -> Auth:
    """Decode a connection's first frame. Anything but a valid AUTH raises ``not_authenticated``."""
    try:
        obj = parse_object(frame)
    except ProtocolError as exc:
        raise ProtocolError(ErrorCode.NOT_AUTHENTICATED, exc.reason) from None
    kind = obj.get("type", "AUTH")
    if kind != "AUTH":
        raise ProtocolError(
            ErrorCode.NOT_AUTHENTICATED,
            f"the first message must authenticate with ai_id and token, got type {kind!r}",
            _msg_id_of(obj),
        )
    try:
        return Auth.model_validate(obj)
    except ValidationError as exc:
        raise ProtocolError(
            ErrorCode.NOT_AUTHENTICATED, describe_validation_error(exc), _msg_id_of(obj)
        ) from None


def decode_client_frame(frame: bytes) -> tuple[ClientMessage, RawFields]:
    """Decode a frame sent by an authenticated client into its typed model, with its raw
    fields (what the hub relays and stores, as the client sent it).

    Raises :class:`ProtocolError` with ``bad_json``, ``not_an_object``, ``unknown_type`` or
    ``invalid_field``; ``ref`` carries the frame's ``msg_id`` whenever it was a string.
    """
    fast = _decode_hot(frame)
    return fast if fast is not None else _decode_careful(frame)


def _decode_careful(frame: bytes) -> tuple[ClientMessage, RawFields]:
    """:func:`decode_client_frame` for any frame: the reference the fast path must agree with,
    and the one that says what is wrong with a bad frame."""
    obj, raw = parse_frame(frame)
    ref = _msg_id_of(obj)
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise ProtocolError(ErrorCode.INVALID_FIELD, "type: a string field is required", ref)
    model = CLIENT_MESSAGE_TYPES.get(kind)
    if model is None:
        known = ", ".join(sorted(CLIENT_MESSAGE_TYPES))
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown type {kind!r}; known: {known}", ref)
    if model is Auth:
        raise ProtocolError(ErrorCode.FORBIDDEN, "this connection is already authenticated", ref)
    message: ClientMessage = _validate(model, obj, ref)
    return message, raw


class _FreeForm(msgspec.Struct):
    """The free-form values of the hot frames, as the client's own bytes."""

    pattern_data: msgspec.Raw = msgspec.Raw()
    component_data: msgspec.Raw = msgspec.Raw()


_ANY_JSON = msgspec.json.Decoder()
_FREE_FORM = msgspec.json.Decoder(_FreeForm)
_HOT: dict[str, tuple[Callable[[Any], Any], str | None]] = {
    # The model's own validator, called as model_validate calls it (without its Python
    # wrapper, a third of the cost of validating a small frame).
    model.model_fields["type"].default: (model.__pydantic_validator__.validate_python, free_form)
    for model, free_form in (
        (PatternShare, "pattern_data"),
        (ComponentShare, "component_data"),
        (CollaborationRequest, None),
        (Ping, None),  # cheap to answer, so the one a pipelining client sends most
    )
}
"""The frames a busy hub gets most, decoded by :func:`_decode_hot`: type -> (the model's
validator, the free-form field whose text is relayed and stored as sent)."""


def _fast_json(frame: bytes, max_depth: int | None) -> dict[str, Any] | None:
    """The JSON object of ``frame`` parsed by msgspec's C decoder, or None for anything the
    careful :func:`parse_frame` might judge differently (nesting past ``max_depth``, what could
    be a huge integer, a float beyond a double's range, a lone surrogate escape, invalid UTF-8
    or JSON, not an object): the caller then takes the careful path, which says what is
    wrong."""
    shape = frame.translate(_HOT_SHAPE, b"+")  # one copy, then only scans of it
    if max_depth is not None and shape.count(b"{") > max_depth:  # every "{" and "[" of it
        return None
    # The regex only where it could match: a find of one byte is several times cheaper than
    # the regex on big frames (and than a find of two bytes on small ones).
    if b"\\" in shape and _SURROGATE_ESCAPE.search(frame):
        return None
    # No look for a huge exponent ("e000" in the shape, as parse_frame does): msgspec refuses
    # a float beyond a double's range itself, exactly where float() gives inf, and the look
    # sent every id with an "e" before three digits (a third of uuid hex ids) the careful way.
    # What msgspec keeps and the careful path refuses is an integer of 309 digits or more.
    if shape.count(b"0") >= _MANY_DIGITS and _HUGE_DIGITS in shape:
        return None
    try:
        obj = _ANY_JSON.decode(frame)
    except msgspec.DecodeError:  # invalid UTF-8 included
        return None
    return obj if type(obj) is dict else None


def _decode_hot(frame: bytes) -> tuple[ClientMessage, RawFields] | None:
    """The fast path of :func:`decode_client_frame` for valid frames of the :data:`_HOT` types:
    parsed by msgspec's C decoder (several times faster than the member-by-member parse that
    finds the raw values), validated by the same model. None for anything else, and for
    anything the careful path might judge differently (what could be a huge number, a lone
    surrogate, deep nesting, any error at all): that path then decodes the frame again and
    gives every bad frame its usual ``ERROR``. So this path only ever accepts frames the
    careful one accepts, with the same model and the same raw texts (tests/protocol check it).
    """
    obj = _fast_json(frame, MAX_DEPTH)
    if obj is None:
        return None
    text = frame.decode("utf-8")  # valid: msgspec decoded it
    kind = obj.get("type")
    hot = _HOT.get(kind) if type(kind) is str else None
    if hot is None:
        return None
    validate, free_form = hot
    try:
        message: ClientMessage = validate(obj)
    except ValidationError:
        return None
    if free_form is None:
        return message, RawFields(text, obj)
    value = bytes(getattr(_FREE_FORM.decode(frame), free_form))
    given = {free_form: value.decode("utf-8")}
    return message, RawFields(text, obj, None, given, {free_form: value})


def decode_client_message(frame: bytes) -> ClientMessage:
    """The typed model of a client's frame (see :func:`decode_client_frame`)."""
    return decode_client_frame(frame)[0]


def decode_server_message(frame: bytes) -> ServerMessage | dict[str, Any]:
    """Decode a frame from the hub. Unknown types come back as plain dicts (tolerant reader).

    No nesting limit beyond Python's: the hub sends client data a few levels deeper than the
    client sent it (``STATE`` lists recent patterns with their data).

    Parsed by msgspec where :func:`_fast_json` takes the frame (a 28 KB ``STATE`` of 200 AIs,
    parsed and validated: 0.47 ms instead of 0.85 ms; the careful parse finds raw values, which
    a client never needs), else the careful way, with the same answers and errors.
    """
    obj = _fast_json(frame, None)
    if obj is None:
        obj = parse_object(frame, max_depth=None)
    model = SERVER_MESSAGE_TYPES.get(str(obj.get("type")))
    if model is None:
        return obj
    result: ServerMessage = _validate(model, obj, None)
    return result


def encode(message: BaseModel) -> bytes:
    """Serialise a model as one frame: compact JSON, aliases applied, ``None`` fields left out."""
    return message.model_dump_json(by_alias=True, exclude_none=True).encode("utf-8") + b"\n"


def encode_object(obj: dict[str, Any]) -> bytes:
    """Serialise a plain JSON object as one frame."""
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode("utf-8") + b"\n"
