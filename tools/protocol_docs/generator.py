"""Render ``docs/protocol.md`` from the message models, so the reference never drifts from the code.

Field tables (names, JSON types, required or not, defaults, constraints) come from each model's
JSON schema and docstring. What the models cannot say lives next to this module:

* ``prose.md``: the document's prose (transport, handshake, replies, checklist...). It is a
  :class:`string.Template`: ``$name`` is replaced by ``VALUES[name]`` (``$$`` is a literal
  ``$``), a line ``<!-- generated: NAME -->`` by the generated section ``NAME`` (see
  :data:`SECTIONS`), and a comment that opens the file is template notes, not copied.
* :mod:`tools.protocol_docs.data`: field meanings, error conditions, per-message examples.
* :mod:`tools.protocol_docs.session`: the example session.

Every example frame is checked against the codec while rendering: a client example must
decode, a hub example must decode into its model, so a stale example stops the generator with
:class:`DocError` instead of misleading a reader.

Usage (from the repository root)::

    python -m tools.protocol_docs > docs/protocol.md   # print
    python -m tools.protocol_docs --write               # write docs/protocol.md
    python -m tools.protocol_docs --check               # exit 1 if docs/protocol.md is stale
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from string import Template

from pydantic import BaseModel

from kernal.config import HubSettings
from kernal.hub.reputation import FULL_PARTNERS, MIN_PARTNERS
from kernal.protocol.codec import (
    DEFAULT_MAX_FRAME,
    MAX_DEPTH,
    decode_auth,
    decode_client_message,
    decode_server_message,
)
from kernal.protocol.errors import CLOSING_CODES, ErrorCode
from kernal.protocol.messages import (
    CLIENT_MESSAGE_TYPES,
    MAX_ORIGINS,
    MAX_TRUST_PEERS,
    PROTOCOL_VERSION,
    SERVER_MESSAGE_TYPES,
    Relayed,
)
from tools.protocol_docs import data, session
from tools.protocol_docs.data import JsonObject

__all__ = ["DEFAULT_PATH", "DocError", "check_client_frame", "check_server_frame", "main", "render"]

DEFAULT_PATH = Path("docs/protocol.md")
PROSE = Path(__file__).with_name("prose.md")

_SETTINGS = HubSettings()

#: Values substituted for ``$name`` in the prose and in the texts of the data modules.
VALUES: dict[str, str] = {
    "port": str(_SETTINGS.port),
    "max_frame": str(DEFAULT_MAX_FRAME),
    "max_frame_human": (
        f"{DEFAULT_MAX_FRAME // (1024 * 1024)} MiB"
        if DEFAULT_MAX_FRAME % (1024 * 1024) == 0
        else f"{DEFAULT_MAX_FRAME} bytes"
    ),
    "auth_timeout": f"{_SETTINGS.auth_timeout:g}",
    "max_depth": str(MAX_DEPTH),
    "send_queue_limit": f"{_SETTINGS.send_queue_limit:,}",
    "send_buffer_mib": f"{_SETTINGS.send_buffer_bytes // 2**20}",
    "presence_limit": str(_SETTINGS.presence_limit),
    "request_fanout": str(_SETTINGS.request_fanout),
    "max_collaborations": str(_SETTINGS.max_collaborations_per_ai),
    "rate_frames": f"{_SETTINGS.rate_frames:,.0f}",
    "rate_mib": f"{_SETTINGS.rate_bytes / 2**20:g}",
    "abuse_seconds": f"{_SETTINGS.abuse_seconds:g}",
    "rate_feedback": f"{_SETTINGS.rate_feedback:g}",
    "rate_feedback_burst": f"{_SETTINGS.rate_feedback_burst:g}",
    "idle_timeout": f"{_SETTINGS.idle_timeout:g}",
    "max_data_kib": f"{_SETTINGS.max_data_bytes // 1024}",
    "replay_items": f"{_SETTINGS.replay_items:,}",
    "recent_limit": str(_SETTINGS.recent_limit),
    "version": str(PROTOCOL_VERSION),
    "trust_peers": f"{MAX_TRUST_PEERS:,}",
    "origins": str(MAX_ORIGINS),
    "min_partners": str(MIN_PARTNERS),
    "full_partners": str(FULL_PARTNERS),
}

_MARKER = re.compile(r"^<!-- generated: (\w+) -->\n", re.MULTILINE)
_NOTES = re.compile(r"\A<!--.*?-->\n", re.DOTALL)


class DocError(Exception):
    """The prose or an example no longer matches the models; the message says what to fix."""


def _sub(text: str) -> str:
    return Template(text).substitute(VALUES)


def _frame(obj: JsonObject) -> str:
    return json.dumps(obj, ensure_ascii=False)


# ---------------------------------------------------------------------------------- examples


def check_client_frame(obj: JsonObject) -> None:
    """Raise :class:`DocError` unless ``obj`` is a frame the hub accepts from a client."""
    encoded = json.dumps(obj).encode()
    try:
        if obj.get("type", "AUTH") == "AUTH":
            decode_auth(encoded)
        else:
            decode_client_message(encoded)
    except Exception as exc:
        raise DocError(f"client example does not decode: {_frame(obj)}: {exc}") from exc


def check_server_frame(obj: JsonObject) -> None:
    """Raise :class:`DocError` unless ``obj`` decodes into the hub model of its ``type``."""
    try:
        message = decode_server_message(json.dumps(obj).encode())
    except Exception as exc:
        raise DocError(f"hub example does not decode: {_frame(obj)}: {exc}") from exc
    if isinstance(message, dict):
        raise DocError(f"hub example has no model for its type: {_frame(obj)}")


def _example(label: str, tag: str, obj: JsonObject) -> str:
    if tag == "client":
        check_client_frame(obj)
    else:
        check_server_frame(obj)
    return f"**{label}:**\n\n```json {tag}\n{_frame(obj)}\n```\n"


# ---------------------------------------------------------------------------------- field tables


def _docstring(model: type[BaseModel]) -> str:
    doc = vars(model).get("__doc__")
    if not doc:
        return ""
    return inspect.cleandoc(doc).replace("``", "`")


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _non_null(schema: JsonObject) -> JsonObject:
    options = [s for s in schema.get("anyOf", []) if s.get("type") != "null"]
    if len(options) == 1:
        merged = dict(schema)
        del merged["anyOf"]
        merged.update(options[0])
        return merged
    return schema


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _anchor(name: str) -> str:
    return f"{name.lower()}-object"


def _json_type(schema: JsonObject) -> str:
    schema = _non_null(schema)
    if "$ref" in schema:
        name = _ref_name(schema["$ref"])
        return f"[{name}](#{_anchor(name)})"
    if "anyOf" in schema:
        return " or ".join(_json_type(option) for option in schema["anyOf"])
    kind = schema.get("type")
    if kind == "array":
        return f"array of {_json_type(schema.get('items', {}))}"
    if kind is None:
        return "any JSON value"
    return str(kind)


def _length(schema: JsonObject, unit: str) -> str | None:
    low = schema.get(f"min{unit}")
    high = schema.get(f"max{unit}")
    word = "characters" if unit == "Length" else "items"
    if low is not None and high is not None:
        return f"{low} to {high} {word}"
    if high is not None:
        return f"at most {high} {word}"
    if low is not None:
        return f"at least {low} {word}"
    return None


def _constraints(schema: JsonObject) -> str:
    schema = _non_null(schema)
    parts: list[str] = []
    if "const" in schema:
        parts.append(f"`{json.dumps(schema['const'])}`")
    if "enum" in schema:
        parts.append(" or ".join(f"`{json.dumps(v)}`" for v in schema["enum"]))
    if (text := _length(schema, "Length")) is not None:
        parts.append(text)
    if "pattern" in schema:
        parts.append(f"matches `{schema['pattern']}`")
    if "minimum" in schema and "maximum" in schema:
        parts.append(f"{_num(schema['minimum'])} to {_num(schema['maximum'])}")
    elif "minimum" in schema:
        parts.append(f"at least {_num(schema['minimum'])}")
    elif "maximum" in schema:
        parts.append(f"at most {_num(schema['maximum'])}")
    if (text := _length(schema, "Items")) is not None:
        parts.append(text)
    items = schema.get("items")
    if isinstance(items, dict) and (inner := _constraints(items)) != "—":
        parts.append(f"each {inner}")
    return ", ".join(parts) or "—"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _describe(side: str, owner: str, name: str) -> str:
    for key in (f"{side}:{owner}.{name}", f"{side}:{name}", f"{owner}.{name}", name):
        if key in data.FIELDS:
            return _sub(data.FIELDS[key])
    raise DocError(
        f"no description for field {name!r} of {owner} ({side} side): add one to FIELDS in"
        f" {data.__name__}"
    )


def _ordered(properties: JsonObject) -> list[tuple[str, JsonObject]]:
    first = [(k, v) for k, v in properties.items() if k == "type"]
    last = [(k, v) for k, v in properties.items() if k == "msg_id"]
    middle = [(k, v) for k, v in properties.items() if k not in ("type", "msg_id")]
    return first + middle + last


def _client_table(name: str, schema: JsonObject) -> str:
    required = set(schema.get("required", []))
    rows = [
        "| Field | Type | Required | Default | Constraints | Meaning |",
        "|---|---|---|---|---|---|",
    ]
    for key, prop in _ordered(schema["properties"]):
        if key == "type":
            needed = "no" if name == "AUTH" else "yes"
        else:
            needed = "yes" if key in required else "no"
        default = prop.get("default")
        shown = "—" if key == "type" or key in required or default is None else json.dumps(default)
        shown = shown if shown == "—" else f"`{shown}`"
        cells = [
            f"`{key}`",
            _json_type(prop),
            needed,
            shown,
            _constraints(prop),
            _describe("client", name, key),
        ]
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(rows) + "\n"


def _server_table(name: str, schema: JsonObject) -> str:
    required = set(schema.get("required", []))
    rows = ["| Field | Type | Present | Meaning |", "|---|---|---|---|"]
    for key, prop in _ordered(schema["properties"]):
        kind = f"`{json.dumps(prop['const'])}`" if key == "type" else _json_type(prop)
        always = key in required or prop.get("default") is not None
        cells = [
            f"`{key}`",
            kind,
            "always" if always else "when set",
            _describe("server", name, key),
        ]
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(rows) + "\n"


def _server_schema(model: type[BaseModel]) -> JsonObject:
    schema: JsonObject = model.model_json_schema(by_alias=True)
    return schema


def _nested_objects(schema: JsonObject) -> str:
    parts = []
    for def_name, def_schema in schema.get("$defs", {}).items():
        parts.append(f"#### {def_name} object\n\n{_server_table(def_name, def_schema)}")
    return "\n".join(parts)


# ---------------------------------------------------------------------------------- sections


def _render_client(name: str) -> str:
    model = CLIENT_MESSAGE_TYPES[name]
    doc = data.CLIENT_DOCS.get(name)
    if doc is None:
        raise DocError(f"client message {name} has no entry in CLIENT_DOCS of {data.__name__}")
    schema = model.model_json_schema(by_alias=True)
    out = [f"### {name}\n", _docstring(model) + "\n", _client_table(name, schema)]
    for def_name, def_schema in schema.get("$defs", {}).items():
        out.append(f"#### {def_name} object\n\n{_client_table(def_name, def_schema)}")
    out.append(_example("Client → hub", "client", doc.example))
    out.append(f"**Hub reply:** {_sub(doc.reply)}\n")
    for reply in doc.replies:
        out.append(_example("Hub → client", "server", reply))
    relayed = SERVER_MESSAGE_TYPES.get(name)
    if relayed is not None:
        if not issubclass(relayed, Relayed):
            raise DocError(f"{name} is both a client and a hub type but not a relay")
        relay_schema = _server_schema(relayed)
        text = _docstring(relayed)
        if doc.relay_to is None:
            raise DocError(f"CLIENT_DOCS[{name!r}] needs relay_to: {name} is relayed")
        out.append(f"#### Relayed {name}\n")
        out.append(f"{doc.relay_to} receives this frame." + (f" {text}" if text else "") + "\n")
        out.append(_server_table(name, relay_schema))
        if not doc.others or doc.others[0].get("type") != name:
            raise DocError(f"CLIENT_DOCS[{name!r}].others must start with a relayed {name}")
    elif doc.others and name != "HELLO":
        raise DocError(f"{name} is not relayed but CLIENT_DOCS lists frames for others")
    label = "Hub → recipients" if relayed is not None else "Hub → other AIs"
    for other in doc.others:
        out.append(_example(label, "server", other))
    return "\n".join(out)


def _render_server(name: str) -> str:
    model = SERVER_MESSAGE_TYPES[name]
    doc = data.SERVER_DOCS.get(name)
    if doc is None:
        raise DocError(f"hub message {name} has no entry in SERVER_DOCS of {data.__name__}")
    schema = _server_schema(model)
    text = _docstring(model)
    out = [f"### {name}\n"]
    if text:
        out.append(text + "\n")
    out.append(f"**Sent:** {_sub(doc.when)}\n")
    out.append(_server_table(name, schema))
    nested = _nested_objects(schema)
    if nested:
        out.append(nested)
    out.append(_example("Hub → client", "server", doc.example))
    return "\n".join(out)


def _server_only() -> list[str]:
    return [name for name in SERVER_MESSAGE_TYPES if name not in CLIENT_MESSAGE_TYPES]


def _contents() -> str:
    lines = [
        "## Contents\n",
        "- [Transport and framing](#transport-and-framing)",
        "- [Connection lifecycle](#connection-lifecycle)",
        "- [Replies, correlation and relays](#replies-correlation-and-relays)",
        "- [Field types and validation](#field-types-and-validation)",
        "- [Messages from a client](#messages-from-a-client): "
        + ", ".join(f"[{n}](#{n.lower()})" for n in CLIENT_MESSAGE_TYPES),
        "- [Messages from the hub](#messages-from-the-hub): "
        + ", ".join(f"[{n}](#{n.lower()})" for n in _server_only()),
        "- [Error codes](#error-codes)",
        "- [Example session](#example-session)",
        "- [Writing a client: checklist](#writing-a-client-checklist)",
    ]
    return "\n".join(lines) + "\n"


def _client_messages() -> str:
    return _join(_render_client(name) for name in CLIENT_MESSAGE_TYPES)


def _server_messages() -> str:
    return _join(_render_server(name) for name in _server_only())


def _error_table() -> str:
    missing = [code.value for code in ErrorCode if code not in data.ERROR_WHEN]
    if missing:
        raise DocError(f"error codes without an ERROR_WHEN entry in {data.__name__}: {missing}")
    rows = ["| Code | When | Connection |", "|---|---|---|"]
    for code in ErrorCode:
        after = "**closes**" if code in CLOSING_CODES else "stays open"
        rows.append(f"| `{code.value}` | {_cell(_sub(data.ERROR_WHEN[code]))} | {after} |")
    return "\n".join(rows) + "\n"


def _session() -> str:
    lines = []
    for line in session.SESSION:
        if line.who == "#":
            assert isinstance(line.frame, str)
            lines.append(f"# {line.frame}")
            continue
        if not isinstance(line.frame, dict) or line.who not in ("C1", "C2", "S1", "S2"):
            raise DocError(f"bad session line: {line}")
        if line.who.startswith("C"):
            check_client_frame(line.frame)
        else:
            check_server_frame(line.frame)
        lines.append(f"{line.who}: {_frame(line.frame)}")
    return "```text\n" + "\n".join(lines) + "\n```\n"


#: The generated sections, in the order their markers must appear in ``prose.md``.
SECTIONS: dict[str, Callable[[], str]] = {
    "contents": _contents,
    "client_messages": _client_messages,
    "server_messages": _server_messages,
    "error_table": _error_table,
    "session": _session,
}


def _join(sections: Iterable[str]) -> str:
    """Sections separated by exactly one blank line, the text ending in one newline."""
    return "\n".join(s.strip("\n") + "\n" for s in sections if s.strip("\n"))


def render() -> str:
    """The complete text of ``docs/protocol.md``. Raises :class:`DocError` (see the module)."""
    extra = set(data.CLIENT_DOCS) - set(CLIENT_MESSAGE_TYPES)
    extra |= set(data.SERVER_DOCS) - set(_server_only())
    if extra:
        raise DocError(f"documented types that no longer exist: {sorted(extra)}")
    template = _NOTES.sub("", PROSE.read_text(encoding="utf-8"), count=1)
    # re.split with one group: prose, marker name, prose, marker name, ..., prose.
    pieces = _MARKER.split(_sub(template))
    names = pieces[1::2]
    if names != list(SECTIONS):
        raise DocError(f"{PROSE} must mark the sections {list(SECTIONS)} in order, not {names}")
    out = [pieces[0]]
    for name, prose in zip(names, pieces[2::2], strict=True):
        out += [SECTIONS[name](), prose]
    return _join(out)


# ---------------------------------------------------------------------------------- command line


def _read(path: Path) -> str | None:
    try:
        return path.read_bytes().decode("utf-8").replace("\r\n", "\n")
    except FileNotFoundError:
        return None


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: print the document, or ``--write`` it, or ``--check`` it (exit 1 if
    the file differs from what would be written)."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.protocol_docs",
        description="Render the protocol reference from the message models.",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="write the file instead of printing")
    mode.add_argument(
        "--check", action="store_true", help="exit 1 if the file differs from what would be written"
    )
    parser.add_argument(
        "--path", type=Path, default=DEFAULT_PATH, help=f"the file (default: {DEFAULT_PATH})"
    )
    args = parser.parse_args(argv)
    path: Path = args.path
    text = render()
    if args.check:
        if _read(path) != text:
            print(
                f"{path} is out of date with the protocol models; regenerate it with"
                f" `python -m tools.protocol_docs --write`",
                file=sys.stderr,
            )
            return 1
        return 0
    if args.write:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="\n")
        print(f"wrote {path}", file=sys.stderr)
        return 0
    sys.stdout.write(text)
    return 0
