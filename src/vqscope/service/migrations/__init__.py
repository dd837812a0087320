"""Alembic migrations of the service database, run in-process (no alembic.ini needed).

`upgrade(engine)` brings any database to the newest schema; the service calls it at start,
and `vqscope serve --migrate-only` runs it alone (for deployments where the service's own
database user may not change the schema). On PostgreSQL an advisory lock serialises
instances that start together; the version table is `vqscope_alembic_version`, so the
schema can share a database with other applications that use Alembic.

A new revision is a new file in versions/ with `down_revision` set to the previous one;
`alembic -x url=... revision` with `script_location` pointing here can draft one.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Engine

VERSION_TABLE = "vqscope_alembic_version"
HERE = Path(__file__).resolve().parent
_PG_LOCK_ID = 7_301_164_251  # any constant: "vqscope schema"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    return config


def head() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    config = alembic_config()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_ID})
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
