"""Fixtures of the storage tests: every store test runs on SQLite and on PostgreSQL.

The contract (``test_store_contract.py``) runs through one test class per backend; the tests
of the SQL backend's own machinery (writer, migrations) take the parametrized ``backend`` or
``store`` fixtures below.

PostgreSQL is expected at ``$KERNAL_TEST_PG_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``, trust auth). Each test gets its own schema,
dropped afterwards. An unreachable server fails the tests loudly: it is never skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from kernal.storage.sql import SqlStore, database_url

PG_URL = os.environ.get("KERNAL_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


@dataclass(frozen=True)
class Backend:
    """Where a test's database lives; ``new_store()`` makes an unopened store on it."""

    name: str
    url: str
    schema: str | None = None

    def new_store(self, **kwargs: int) -> SqlStore:
        return SqlStore(self.url, schema=self.schema, **kwargs)


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[sa.Engine]:
    """An engine on the test PostgreSQL database, to create and drop per-test schemas."""
    engine = sa.create_engine(database_url(PG_URL), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.OperationalError as exc:
        engine.dispose()
        pytest.fail(
            f"PostgreSQL is required by the storage tests and is unreachable at {PG_URL} "
            f"(set KERNAL_TEST_PG_URL to point elsewhere): {exc}",
            pytrace=False,
        )
    yield engine
    engine.dispose()


@pytest.fixture
def pg_schema(pg_admin: sa.Engine) -> Iterator[str]:
    """A fresh, empty PostgreSQL schema, dropped with everything in it after the test."""
    schema = f"kt_{uuid.uuid4().hex}"
    with pg_admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    yield schema
    with pg_admin.begin() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        return Backend("sqlite", f"{tmp_path}/hub_data.db")
    schema: str = request.getfixturevalue("pg_schema")
    return Backend("postgresql", PG_URL, schema)


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[SqlStore]:
    """An open SQL store on a fresh database of ``backend``, closed after the test."""
    store = backend.new_store()
    await store.open()
    try:
        yield store
    finally:
        await store.close()
