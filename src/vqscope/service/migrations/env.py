"""Alembic environment: migrations run on the connection `upgrade()` hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from vqscope.service.migrations import VERSION_TABLE
from vqscope.service.store import Base
from vqscope.studies import store as _study_tables  # noqa: F401  (registers the study tables on Base)

config = context.config


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
    else:  # the alembic command line, with -x url=... or sqlalchemy.url set
        url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
        with create_engine(url).begin() as conn:
            _run(conn)
