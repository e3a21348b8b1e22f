"""docs/protocol.md: generated from the models, current, and every example in it is valid."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kernal.protocol import (
    ErrorCode,
    decode_auth,
    decode_client_message,
    decode_server_message,
)
from kernal.protocol.messages import CLIENT_MESSAGE_TYPES, SERVER_MESSAGE_TYPES
from tools.protocol_docs import data
from tools.protocol_docs import generator as docs

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "protocol.md"
FENCE = re.compile(r"^```(\S*)[ \t]*(\S*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
SESSION_LINE = re.compile(r"^([CS])([12]): (\{.*\})$")


@pytest.fixture(scope="module")
def text() -> str:
    return DOC.read_text(encoding="utf-8")


def fences(text: str) -> list[tuple[str, str, str]]:
    """``(language, tag, body)`` of every fenced block."""
    return [(m.group(1), m.group(2), m.group(3)) for m in FENCE.finditer(text)]


def decode_client(obj: dict[str, Any]) -> Any:
    data = json.dumps(obj).encode()
    if obj.get("type", "AUTH") == "AUTH":
        return decode_auth(data)
    return decode_client_message(data)


def test_doc_is_what_the_generator_produces(text: str) -> None:
    assert text == docs.render(), (
        "docs/protocol.md is stale: run `python -m tools.protocol_docs --write`"
    )


def test_render_is_deterministic() -> None:
    assert docs.render() == docs.render()


@pytest.mark.parametrize("name", sorted(set(CLIENT_MESSAGE_TYPES) | set(SERVER_MESSAGE_TYPES)))
def test_every_message_type_has_a_section(text: str, name: str) -> None:
    assert re.search(rf"^### {name}$", text, re.MULTILINE), f"no section for {name}"


@pytest.mark.parametrize("name", sorted(set(CLIENT_MESSAGE_TYPES) & set(SERVER_MESSAGE_TYPES)))
def test_every_relayed_type_documents_its_relayed_form(text: str, name: str) -> None:
    assert f"#### Relayed {name}\n" in text


@pytest.mark.parametrize("code", list(ErrorCode), ids=lambda c: c.value)
def test_every_error_code_is_in_the_table(text: str, code: ErrorCode) -> None:
    assert re.search(rf"^\| `{code.value}` \| .+ \| (\*\*closes\*\*|stays open) \|$", text, re.M)


@pytest.mark.parametrize(
    "fact",
    [
        "port **6000**",
        "1048576 bytes",
        "10 seconds",
        "`frame_too_large`",
        "`replaced`",
        "must not\nreconnect automatically",
        "every frame except `PING` and `HELLO`\ngets exactly one `ACK` or `ERROR`",
    ],
)
def test_key_facts_are_stated(text: str, fact: str) -> None:
    assert fact in text


def test_json_blocks_are_tagged(text: str) -> None:
    blocks = [(lang, tag) for lang, tag, _ in fences(text) if lang == "json"]
    assert blocks, "no ```json examples found"
    assert {tag for _, tag in blocks} == {"client", "server"}


def test_client_examples_decode(text: str) -> None:
    examples = [body for lang, tag, body in fences(text) if lang == "json" and tag == "client"]
    seen = set()
    for body in examples:
        obj = json.loads(body)
        assert isinstance(obj, dict)
        assert "\n" not in body.strip(), "an example frame must be one line"
        seen.add(type(decode_client(obj)).__name__)
    # One client -> hub example per client message type.
    assert len(seen) == len(CLIENT_MESSAGE_TYPES)


def test_server_examples_decode(text: str) -> None:
    examples = [body for lang, tag, body in fences(text) if lang == "json" and tag == "server"]
    kinds = set()
    for body in examples:
        assert "\n" not in body.strip(), "an example frame must be one line"
        message = decode_server_message(body.encode())
        assert not isinstance(message, dict), f"no hub model for {body}"
        kinds.add(json.loads(body)["type"])
    assert kinds == set(SERVER_MESSAGE_TYPES)


def session(text: str) -> list[tuple[str, str, dict[str, Any]]]:
    """``(side, connection, frame)`` for every frame line of the example session."""
    start = text.index("## Example session")
    block = next(body for lang, _, body in fences(text[start:]) if lang == "text")
    lines = []
    for line in block.splitlines():
        if line.startswith("#"):
            continue
        match = SESSION_LINE.match(line)
        assert match, f"unexpected session line: {line!r}"
        lines.append((match.group(1), match.group(2), json.loads(match.group(3))))
    return lines


def test_session_frames_decode(text: str) -> None:
    for side, _, frame in session(text):
        if side == "C":
            decode_client(frame)
        else:
            assert not isinstance(decode_server_message(json.dumps(frame).encode()), dict)


def test_session_answers_every_frame_once(text: str) -> None:
    """The transcript follows the documented reply rule on each connection."""
    lines = session(text)
    sent: dict[str, list[dict[str, Any]]] = defaultdict(list)
    replies: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for side, conn, frame in lines:
        (sent if side == "C" else replies)[conn].append(frame)
    for conn, frames in sent.items():
        ids = [f["msg_id"] for f in frames if "msg_id" in f]
        assert len(ids) == len(set(ids)), f"msg_id reused on connection {conn}"
        for frame in frames:
            kind = frame.get("type", "AUTH")
            if kind == "AUTH":
                answers = [r for r in replies[conn] if r["type"] in ("AUTH_OK", "AUTH_FAILED")]
                assert answers
                continue
            if kind == "HELLO":
                assert any(r["type"] == "STATE" for r in replies[conn])
                continue
            answers = [r for r in replies[conn] if r.get("ref") == frame["msg_id"]]
            assert len(answers) == 1, (conn, frame, answers)
            (answer,) = answers
            expected = {"PING": "PONG"}.get(kind, "ACK")
            assert answer["type"] in (expected, "ERROR")
            if answer["type"] == "ACK":
                assert answer["of"] == kind


def test_session_relays_carry_from(text: str) -> None:
    names = {"1": "AI_Node_1", "2": "AI_Node_2"}
    for side, conn, frame in session(text):
        if side == "S" and frame["type"] in CLIENT_MESSAGE_TYPES:
            assert frame["from"] != names[conn], "an AI never receives its own relay"
            assert frame["from"] in names.values()


# ------------------------------------------------------------------------------ command line


def test_main_prints_the_document(capsys: pytest.CaptureFixture[str]) -> None:
    assert docs.main([]) == 0
    assert capsys.readouterr().out == docs.render()


def test_main_write_then_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "sub" / "protocol.md"
    assert docs.main(["--check", "--path", str(target)]) == 1
    assert "out of date" in capsys.readouterr().err
    assert docs.main(["--write", "--path", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == docs.render()
    assert docs.main(["--check", "--path", str(target)]) == 0
    target.write_text(docs.render() + "hand edit\n", encoding="utf-8")
    assert docs.main(["--check", "--path", str(target)]) == 1
    assert "--write" in capsys.readouterr().err


def test_runs_as_a_module_from_the_repository_root() -> None:
    # From the root, `kernal` could resolve to the launcher kernal.py: the run must get the
    # package in src/ (the launcher hands it over), and find the committed document current.
    code = "import tools.protocol_docs.generator, kernal; print(kernal.__file__)"
    found = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert Path(found.stdout.strip()) == ROOT / "src" / "kernal" / "__init__.py"
    check = subprocess.run(
        [sys.executable, "-m", "tools.protocol_docs", "--check"], cwd=ROOT, capture_output=True
    )
    assert check.returncode == 0, check.stderr


def test_check_tolerates_crlf_checkouts(tmp_path: Path) -> None:
    target = tmp_path / "protocol.md"
    target.write_bytes(docs.render().replace("\n", "\r\n").encode())
    assert docs.main(["--check", "--path", str(target)]) == 0


# ---------------------------------------------------------------------- the generator's guards


def test_a_field_without_description_stops_the_generator(monkeypatch: pytest.MonkeyPatch) -> None:
    fields = dict(data.FIELDS)
    del fields["pattern_data"]
    monkeypatch.setattr(data, "FIELDS", fields)
    with pytest.raises(docs.DocError, match="pattern_data"):
        docs.render()


def test_an_undocumented_error_code_stops_the_generator(monkeypatch: pytest.MonkeyPatch) -> None:
    when = dict(data.ERROR_WHEN)
    del when[ErrorCode.CONFLICT]
    monkeypatch.setattr(data, "ERROR_WHEN", when)
    with pytest.raises(docs.DocError, match="conflict"):
        docs.render()


def test_an_undocumented_message_stops_the_generator(monkeypatch: pytest.MonkeyPatch) -> None:
    client_docs = dict(data.CLIENT_DOCS)
    del client_docs["FEEDBACK"]
    monkeypatch.setattr(data, "CLIENT_DOCS", client_docs)
    with pytest.raises(docs.DocError, match="FEEDBACK"):
        docs.render()


@pytest.mark.parametrize(
    "edit",
    [
        lambda prose: prose.replace("<!-- generated: session -->\n", ""),
        lambda prose: prose.replace("generated: contents", "generated: nothing"),
        lambda prose: prose + "<!-- generated: contents -->\n",
    ],
    ids=["missing", "unknown", "repeated"],
)
def test_a_misplaced_section_marker_stops_the_generator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edit: Callable[[str], str]
) -> None:
    prose = tmp_path / "prose.md"
    prose.write_text(edit(docs.PROSE.read_text(encoding="utf-8")), encoding="utf-8")
    monkeypatch.setattr(docs, "PROSE", prose)
    with pytest.raises(docs.DocError, match="must mark the sections"):
        docs.render()


@pytest.mark.parametrize(
    "obj",
    [
        {"type": "COLLABORATION_PROGRESS", "collaboration_id": "c", "progress": "50"},
        {"type": "NOPE"},
        {"type": "AUTH", "ai_id": "bad id", "token": "t"},
    ],
)
def test_an_invalid_client_example_stops_the_generator(obj: dict[str, Any]) -> None:
    with pytest.raises(docs.DocError):
        docs.check_client_frame(obj)


@pytest.mark.parametrize(
    "obj", [{"type": "ACK"}, {"type": "NEWS"}, {"type": "PATTERN_SHARE", "pattern_id": "p"}]
)
def test_an_invalid_hub_example_stops_the_generator(obj: dict[str, Any]) -> None:
    with pytest.raises(docs.DocError):
        docs.check_server_frame(obj)
