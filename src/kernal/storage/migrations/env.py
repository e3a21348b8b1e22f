"""Alembic environment of the hub's schema.

The hub runs migrations itself (:meth:`kernal.storage.sql.SqlStore.open`): it passes an open
connection, already inside a transaction, in ``config.attributes["connection"]``, so the whole
upgrade commits or rolls back as one. For manual use with the ``alembic`` command, set
``sqlalchemy.url`` (a SQLAlchemy URL or a plain SQLite path) in the config instead.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine
from sqlalchemy.pool import NullPool

from kernal.storage.schema import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things: later migrations need batch (copy-and-move) mode.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    from kernal.storage.engine import database_url

    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("pass a connection in config.attributes or set sqlalchemy.url")
    return database_url(url)


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    given: Connection | None = config.attributes.get("connection")
    if given is not None:
        _run(given)
    else:
        engine = create_engine(_url(), poolclass=NullPool)
        try:
            with engine.connect() as connection:
                _run(connection)
        finally:
            engine.dispose()
