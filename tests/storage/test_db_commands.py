"""``kernal db status|migrate|copy``: a real hub's SQLite file moved to PostgreSQL and served
again, upgrades of old revisions in place, and the copy's refusals.

The PostgreSQL tests get a database of their own (``CREATE DATABASE kernal_copy_<random>``,
dropped after), as an operator's copy would target a database, not a schema.
"""

from __future__ import annotations

import asyncio
import io
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.pool import NullPool
from typer.testing import CliRunner

from kernal.cli import app
from kernal.config import TrainerSettings
from kernal.hub.auth import hash_token
from kernal.storage.engine import MIGRATIONS_DIR, database_url, head_revision
from kernal.storage.schema import metadata
from kernal.trainer.trainer import Trainer
from tests.conftest import ServiceFactory
from tests.helpers import RawClient
from tests.storage.conftest import PG_URL, Backend

runner = CliRunner()
TABLES = [table.name for table in metadata.sorted_tables]
OPS_TOKEN = "ops-secret"


@pytest.fixture
def pg_database(pg_admin: sa.Engine) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped (connections and all) after."""
    name = f"kernal_copy_{uuid.uuid4().hex[:12]}"
    admin = pg_admin.execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    yield sa.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE {name} WITH (FORCE)")


def engine_on(url_or_path: str) -> sa.Engine:
    return sa.create_engine(database_url(url_or_path), poolclass=NullPool)


def dump(url_or_path: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table the database has (bar Alembic's), in key order."""
    engine = engine_on(url_or_path)
    try:
        reflected = sa.MetaData()
        reflected.reflect(engine)
        with engine.connect() as conn:
            return {
                name: [
                    tuple(row)
                    for row in conn.execute(
                        sa.select(table).order_by(
                            *(list(table.primary_key.columns) or list(table.columns))
                        )
                    )
                ]
                for name, table in reflected.tables.items()
                if name != "alembic_version"
            }
    finally:
        engine.dispose()


def fill_empty_tables(path: str) -> list[str]:
    """Give every empty table of the hub one row made from its column types, so that a copy
    that skipped any table (a new one included) is caught. Returns the tables filled."""
    filled = []
    engine = engine_on(path)
    try:
        with engine.begin() as conn:
            for table in metadata.sorted_tables:
                if conn.execute(sa.select(sa.func.count()).select_from(table)).scalar():
                    continue
                row: dict[str, Any] = {}
                for column in table.columns:
                    if isinstance(column.type, sa.Integer):
                        row[column.name] = 7
                    elif isinstance(column.type, sa.Float):
                        row[column.name] = 0.25
                    elif isinstance(column.type, sa.Boolean):
                        row[column.name] = True
                    else:
                        row[column.name] = f"{table.name}.{column.name}"
                conn.execute(table.insert(), [row])
                filled.append(table.name)
    finally:
        engine.dispose()
    return filled


def copy(*args: str) -> Any:
    return runner.invoke(app, ["db", "copy", *args])


def counts_printed(output: str) -> dict[str, int]:
    rows = (line.split() for line in output.splitlines())
    return {row[0]: int(row[1]) for row in rows if len(row) == 2 and row[0] in TABLES}


async def run_trainers(host: str, port: int) -> None:
    trainers = [
        Trainer(
            TrainerSettings(
                ai_id=f"AI_Node_{n}",
                specialization=spec,
                token=f"secret{n}",
                hub_host=host,
                hub_port=port,
                speed=100.0,
                seed=n,
                engine="simulated",
            )
        )
        for n, spec in ((1, "networking"), (2, "graphics"))
    ]
    reports = await asyncio.gather(*(trainer.run(duration=150) for trainer in trainers))
    for trainer, report in zip(trainers, reports, strict=True):
        assert trainer.succeeded(), report


async def api_items(client: httpx.AsyncClient, kind: str) -> list[dict[str, Any]]:
    response = await client.get(f"/api/{kind}", params={"limit": 500})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()
    return items


async def test_sqlite_hub_copied_to_postgresql_serves_the_same_knowledge(
    make_service: ServiceFactory, tmp_path: Path, pg_database: str
) -> None:
    source = str(tmp_path / "hub_data.db")
    service = await make_service(db=source, dashboard_port=0, speed=100.0)
    await run_trainers(*service.hub.address)
    await service.hub.store.set_token_hash("AI_Ops", hash_token(OPS_TOKEN, iterations=1), 1.0)
    async with httpx.AsyncClient(base_url="http://{}:{}".format(*service.dashboard_address)) as c:
        patterns, components = await api_items(c, "patterns"), await api_items(c, "components")
    await service.stop()
    assert patterns and components
    filled = fill_empty_tables(source)
    assert not {"shared_patterns", "shared_components", "collaborations"} & set(filled)

    result = copy(source, pg_database, "--batch", "3")
    assert result.exit_code == 0, result.output
    before = dump(source)
    assert set(before) == set(TABLES)  # the schema has no table the copy does not know of
    assert all(before.values())
    assert dump(pg_database) == before  # every row of every table, ids and all
    assert counts_printed(result.stdout) == {name: len(rows) for name, rows in before.items()}
    back = str(tmp_path / "back.db")  # and any to any: PostgreSQL to SQLite, read-only snapshot
    assert copy(pg_database, back).exit_code == 0
    assert dump(back) == before

    copied = await make_service(db=pg_database, dashboard_port=0, speed=100.0)
    async with httpx.AsyncClient(base_url="http://{}:{}".format(*copied.dashboard_address)) as c:
        assert await api_items(c, "patterns") == patterns
        assert await api_items(c, "components") == components
    # The copied token works, and new rows get ids past the copied ones (feedback's sequence).
    client = await RawClient.connect(copied.hub)
    try:
        await client.login("AI_Ops", OPS_TOKEN)
        await client.send({"type": "FEEDBACK", "kind": "pattern", "id": patterns[0]["pattern_id"]})
        assert (await client.recv_type("ACK"))["type"] == "ACK"
    finally:
        await client.close()
    engine = engine_on(pg_database)
    try:
        with engine.connect() as conn:
            ids = conn.exec_driver_sql("SELECT id FROM feedback ORDER BY id").scalars().all()
    finally:
        engine.dispose()
    assert len(ids) == len(before["feedback"]) + 1 and ids[-1] > before["feedback"][-1][0]


def test_copy_moves_every_table_in_batches_and_refuses_a_filled_destination(
    tmp_path: Path,
) -> None:
    source, target = str(tmp_path / "a.db"), str(tmp_path / "b.db")
    assert runner.invoke(app, ["db", "migrate", "--db", source]).exit_code == 2  # no such file
    assert runner.invoke(app, ["token", "add", "AI_X", "--db", source]).exit_code == 0
    # `token add` fills tokens and its change log
    assert set(fill_empty_tables(source)) == set(TABLES) - {"tokens", "token_changes"}
    result = copy(source, target, "--batch", "1")
    assert result.exit_code == 0, result.output
    assert dump(target) == dump(source)

    again = copy(source, target)
    assert again.exit_code == 2
    assert "already holds data" in again.output and "--force" in again.output
    assert dump(target) == dump(source)
    with sqlite3.connect(target) as conn:  # a row only the destination has goes with --force
        conn.execute(
            "INSERT INTO tokens (ai_id, token_hash, created_at) VALUES ('AI_Extra', 'h', 1.0)"
        )
    forced = copy(source, target, "--force")
    assert forced.exit_code == 0, forced.output
    assert dump(target) == dump(source)

    same = copy(source, f"sqlite:///{tmp_path}/./a.db")
    assert same.exit_code == 2 and "same database" in same.output

    with sqlite3.connect(target) as conn:  # as a newer kernal would leave it
        conn.execute("UPDATE alembic_version SET version_num = '9999_future'")
    newer = copy(source, target, "--force")
    assert newer.exit_code == 2 and "a newer kernal upgraded it" in newer.output
    migrate = runner.invoke(app, ["db", "migrate", "--db", target])
    assert migrate.exit_code == 2 and "a newer kernal upgraded it" in migrate.output
    status = runner.invoke(app, ["db", "status", "--db", target])
    assert "newer than this kernal" in status.stdout


def test_copy_of_a_row_the_destination_refuses_writes_nothing(tmp_path: Path) -> None:
    """A prototype file keeps its looser tables (NULLs allowed); the hub's own schema does not
    take such a row, and the copy says which table and leaves the destination empty."""
    source, target = tmp_path / "proto.db", str(tmp_path / "new.db")
    with sqlite3.connect(source) as conn:
        conn.execute(
            "CREATE TABLE shared_patterns (pattern_id TEXT PRIMARY KEY, pattern_data TEXT, "
            "contributor TEXT, timestamp REAL, usage_count INTEGER DEFAULT 0)"
        )
        conn.execute("INSERT INTO shared_patterns VALUES ('ok', '{}', 'AI_1', 1.0, 0)")
        conn.execute("INSERT INTO shared_patterns VALUES ('bad', NULL, 'AI_1', 2.0, 0)")
    refused = copy(str(source), target)
    assert refused.exit_code == 2 and "kernal db migrate" in refused.output  # no revision yet
    migrated = runner.invoke(app, ["db", "migrate", "--db", str(source)])
    assert migrated.exit_code == 0, migrated.output
    result = copy(str(source), target)
    assert result.exit_code == 2
    assert "refused a row of shared_patterns" in result.output
    assert "Nothing was written" in result.output
    assert all(rows == [] for rows in dump(target).values())


def downgrade(engine: sa.Engine, revision: str) -> None:
    try:
        with engine.begin() as conn:
            config = Config(output_buffer=io.StringIO())
            config.set_main_option("script_location", str(MIGRATIONS_DIR))
            config.attributes["connection"] = conn
            command.downgrade(config, revision)
    finally:
        engine.dispose()


async def test_migrate_upgrades_an_old_revision_in_place(backend: Backend, tmp_path: Path) -> None:
    url = backend.url if backend.schema is None else f"{backend.url}?schema={backend.schema}"
    async with backend.new_store() as store:
        await store.set_token_hash("AI_Old", "hash", 1.0)
    downgrade(backend.new_store().create_engine(), "0002_timestamp_indexes")

    status = runner.invoke(app, ["db", "status", "--db", url])
    assert status.exit_code == 0, status.output
    assert "revision: 0002_timestamp_indexes" in status.stdout
    assert "0003_contributor_scores" in status.stdout and "to run" in status.stdout
    refused = copy(url, str(tmp_path / "copy.db"))
    assert refused.exit_code == 2 and "kernal db migrate --db SRC" in refused.output

    migrated = runner.invoke(app, ["db", "migrate", "--db", url])
    assert migrated.exit_code == 0, migrated.output
    assert f"upgraded 0002_timestamp_indexes -> {head_revision()}" in migrated.stdout
    async with backend.new_store() as store:
        assert await store.get_token_hash("AI_Old") == "hash"
    again = runner.invoke(app, ["db", "migrate", "--db", url])
    assert again.exit_code == 0 and "up to date" in again.stdout
    status = runner.invoke(app, ["db", "status", "--db", url])
    assert "state:    up to date" in status.stdout
    assert counts_printed(status.stdout)["tokens"] == 1
