"""The token and TLS options users type: `kernal token add --expires | rotate | hash | list`,
and how `kernal trainer` finds its token and its hub."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kernal.cli import app
from kernal.cli.tokens import parse_expiry
from kernal.cli.trainers import read_token
from kernal.config import HubAddress, parse_hub_url
from kernal.hub.auth import verify_token
from kernal.hub.tokens import parse_tokens_file

runner = CliRunner()
NOW = 1_800_000_000.0


def test_parse_expiry() -> None:
    assert parse_expiry("30d", NOW) == NOW + 30 * 86_400
    assert parse_expiry("12h", NOW) == NOW + 12 * 3600
    assert parse_expiry("90m", NOW) == NOW + 5400
    assert parse_expiry("1.5w", NOW) == NOW + 1.5 * 7 * 86_400
    assert parse_expiry("2030-01-31", NOW) == dt.datetime(2030, 1, 31, tzinfo=dt.UTC).timestamp()
    paris = dt.timezone(dt.timedelta(hours=1))
    assert (
        parse_expiry("2030-01-31T12:00+01:00", NOW)
        == dt.datetime(2030, 1, 31, 12, tzinfo=paris).timestamp()
    )
    for bad, message in [
        ("soon", "expected a duration"),
        ("0d", "must be positive"),
        ("2020-01-01", "in the past"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_expiry(bad, NOW)


def test_add_with_expiry_rotate_and_list(tmp_path: Path) -> None:
    db = str(tmp_path / "hub.db")
    added = runner.invoke(app, ["token", "add", "AI_A", "--expires", "30d", "--db", db])
    assert added.exit_code == 0, added.output
    assert "valid until" in added.stderr
    old = added.stdout.strip().splitlines()[-1]
    runner.invoke(app, ["token", "add", "AI_B", "--db", db])
    rotated = runner.invoke(app, ["token", "rotate", "AI_A", "--db", db])
    assert rotated.exit_code == 0, rotated.output
    new = rotated.stdout.strip().splitlines()[-1]
    assert len(new) >= 40 and new != old
    listed = runner.invoke(app, ["token", "list", "--db", db])
    rows = [line.split("\t") for line in listed.stdout.splitlines()]
    # The rotation set a new token without expiry (--expires applies to the token it makes).
    assert [(row[0], row[2], row[3]) for row in rows] == [
        ("AI_A", "never", "cli"),
        ("AI_B", "never", "cli"),
    ]
    expiring = runner.invoke(
        app, ["token", "rotate", "AI_B", "--expires", "2099-01-01", "--db", db]
    )
    assert expiring.exit_code == 0
    listed = runner.invoke(app, ["token", "list", "--db", db])
    assert "AI_B\t" in listed.stdout and "2099-01-01T00:00:00+00:00" in listed.stdout


def test_rotate_or_expire_wrongly_says_what_to_do(tmp_path: Path) -> None:
    db = str(tmp_path / "hub.db")
    missing = runner.invoke(app, ["token", "rotate", "AI_Nobody", "--db", db])
    assert missing.exit_code == 2 and "kernal token add AI_Nobody" in missing.output
    past = runner.invoke(app, ["token", "add", "AI_A", "--expires", "2001-01-01", "--db", db])
    assert past.exit_code == 2 and "in the past" in past.output


def test_hash_prints_a_tokens_file_line_and_stores_nothing(tmp_path: Path) -> None:
    result = runner.invoke(app, ["token", "hash", "AI_A"])
    assert result.exit_code == 0, result.output
    token = result.stderr.strip().rsplit(" ", 1)[-1]
    line = result.stdout.strip()
    path = tmp_path / "tokens"
    path.write_text(line + "\n", encoding="utf-8")
    entries = parse_tokens_file(path)
    assert list(entries) == ["AI_A"] and verify_token(token, entries["AI_A"])
    assert token not in line
    colon = runner.invoke(app, ["token", "hash", "AI_A", "--token", "a:b"])
    assert colon.exit_code == 2 and "cannot contain ':'" in colon.output


def test_read_token(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("  s3cret \n", encoding="utf-8")
    assert read_token(None, path, "AI_A") == "s3cret"
    assert read_token("given", None, "AI_A") == "given"
    with pytest.raises(ValueError, match="give the token once"):
        read_token("given", path, "AI_A")
    with pytest.raises(ValueError, match="KERNAL_TOKEN"):
        read_token(None, None, "AI_A")
    (tmp_path / "empty").write_text("\n", encoding="utf-8")
    with pytest.raises(ValueError, match="is empty"):
        read_token(None, tmp_path / "empty", "AI_A")


def test_trainer_command_reports_token_and_address_mistakes(tmp_path: Path) -> None:
    missing = runner.invoke(
        app, ["trainer", "AI_A", "networking", "--token-file", str(tmp_path / "nope")]
    )
    assert missing.exit_code == 2 and "cannot read the token file" in missing.output
    no_token = runner.invoke(app, ["trainer", "AI_A", "networking"], env={"KERNAL_TOKEN": ""})
    assert no_token.exit_code == 2 and "no token for AI_A" in no_token.output
    scheme = runner.invoke(
        app, ["trainer", "AI_A", "networking", "--hub", "ftp://h:1"], env={"KERNAL_TOKEN": "t"}
    )
    assert scheme.exit_code == 2 and "unknown scheme 'ftp'" in scheme.output
    ca = runner.invoke(
        app,
        ["trainer", "AI_A", "networking", "--hub", "tls://h:1", "--ca", str(tmp_path / "ca")],
        env={"KERNAL_TOKEN": "t"},
    )
    assert ca.exit_code == 2 and "does not exist" in ca.output


def test_parse_hub_url() -> None:
    assert parse_hub_url("tls://hub.example:7000") == HubAddress("hub.example", 7000, tls=True)
    assert parse_hub_url("TLS://[::1]:6001/") == HubAddress("::1", 6001, tls=True)
    assert parse_hub_url("tcp://10.0.0.5:7000") == HubAddress("10.0.0.5", 7000)
    assert parse_hub_url("hub.local") == HubAddress("hub.local", 6000)
    with pytest.raises(ValueError, match="unknown scheme"):
        parse_hub_url("http://hub:80")
