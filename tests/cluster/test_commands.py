"""`kernal hub --bus` refusals, and the trainer's list of hub addresses."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from kernal.cli import app
from kernal.config import parse_hub_addresses
from tests.cluster.conftest import REDIS_URL

runner = CliRunner()


def test_a_bus_needs_a_shared_database(tmp_path: Path) -> None:
    db = str(tmp_path / "h.db")
    result = runner.invoke(app, ["hub", "--port", "0", "--db", db, "--bus", REDIS_URL])
    assert result.exit_code == 2
    assert "postgresql://" in result.output and "kernal db copy" in result.output


def test_an_unknown_or_unreachable_bus_is_refused_with_what_to_do(pg_database: str) -> None:
    unknown = runner.invoke(app, ["hub", "--port", "0", "--db", pg_database, "--bus", "amqp://x"])
    assert unknown.exit_code == 2 and "redis://" in unknown.output and "nats://" in unknown.output
    for url in ("redis://127.0.0.1:1", "nats://127.0.0.1:1"):
        gone = runner.invoke(
            app, ["hub", "--port", "0", "--dashboard-port", "-1", "--db", pg_database, "--bus", url]
        )
        assert gone.exit_code == 2, url
        assert "cannot join the cluster" in gone.output and "without --bus" in gone.output


def test_hub_addresses_are_split_on_commas() -> None:
    assert parse_hub_addresses("a:6000, b:6001,[::1]:6002,c") == [
        ("a", 6000),
        ("b", 6001),
        ("::1", 6002),
        ("c", 6000),
    ]
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_hub_addresses("a:6000,,b:6000")
