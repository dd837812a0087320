"""Is this database the one vqscope left? Checked before the service writes a byte to it.

Why: SQLite creates a missing file silently, so a database that was truncated to 0 bytes, or
replaced by a foreign file, or pointed at by mistake, used to start "healthy" with every
earlier job gone, and a damaged one started and then answered 500. Each of these is now
refused at start with one line naming the file and what is wrong (a `StorageError`, exit
code 29), and nothing is written to the file first: the checks read it with a read-only
connection, before the service's own engine switches it to WAL mode or migrates it.

    a missing file                       created (a new, empty database)
    0 bytes                              refused: "empty" (the jobs it held are gone)
    no "SQLite format 3" header          refused: "not a SQLite database"
    PRAGMA quick_check fails             refused: "damaged"
    tables, none of them vqscope's       refused: "another application's database"
    SQLite, no tables at all             accepted (a first start that stopped before migrating)
    a schema revision newer than ours    refused (see `open_error`)

`quick_check` reads every page (about 1 s per GB on a warm cache), verifying b-tree structure
and record formats, but not that indexes match their tables (`integrity_check` does that, at
twice the cost). PostgreSQL checks its own pages; there only the connection is checked, and
a database shared with other applications is normal (vqscope's tables are prefixed).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import quote

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from ..errors import (
    CorruptDatabaseError,
    DatabaseUnavailableError,
    EmptyDatabaseError,
    ForeignDatabaseError,
    NotADatabaseError,
    SchemaTooNewError,
    StorageError,
    VQScopeError,
)
from .migrations import VERSION_TABLE
from .redact import redact_text

SQLITE_MAGIC = b"SQLite format 3\x00"
_KNOWN_HEADERS = (  # what a wrong file most often is, to say so
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip file"),
    (b"PGDMP", "a PostgreSQL dump"),
    (b"-- ", "an SQL script"),
)
_BUSY = ("database is locked", "database is busy", "database table is locked")



def safe_url(url: str) -> str:
    """A database URL as messages show it: the password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"

def sqlite_file(url: str) -> Path | None:
    """The file a sqlite URL names; None for other databases and in-memory ones."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if not parsed.drivername.startswith("sqlite"):
        return None
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:") or parsed.query.get("uri"):
        return None
    return Path(database)


def check_sqlite_file(path: Path) -> None:
    """Refuse a database file that is not vqscope's, before anything writes to it."""
    wal = path.with_name(path.name + "-wal")
    if not path.exists():
        if _size(wal) > 0:
            raise StorageError(
                f"{path}: the database file is missing but its write-ahead log {wal.name} is not: restore the "
                "database from a backup, or remove the -wal and -shm files to start with an empty database", str(path))
        return  # a new database, created now
    if path.is_dir():
        raise StorageError(f"{path}: is a folder, not a database file", str(path))
    try:
        with open(path, "rb") as fh:
            header = fh.read(100)
    except OSError as exc:
        raise StorageError(f"cannot read the database file {path}: {exc.strerror}", str(path)) from None
    if not header:
        raise EmptyDatabaseError(
            f"{path}: the database file is empty (0 bytes), so every job it held is gone; restore it from a "
            "backup, or delete it to start with an empty database", str(path))
    if not header.startswith(SQLITE_MAGIC):
        raise NotADatabaseError(
            f"{path}: not a SQLite database ({_describe(header)}); point --db or --data-dir at vqscope's "
            "database, or move this file away", str(path))
    problems, tables = _inspect(path)
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise CorruptDatabaseError(
            f"{path}: the database is damaged (quick_check: {_one_line(problems[0])}{more}); restore it from a "
            "backup (sqlite3's .recover can save what is readable)", str(path))
    if tables and VERSION_TABLE not in tables:
        shown = ", ".join(tables[:5]) + (f" and {len(tables) - 5} more" if len(tables) > 5 else "")
        raise ForeignDatabaseError(
            f"{path}: a SQLite database of another application (tables: {shown}), not vqscope's; give vqscope "
            "a file of its own (--db or --data-dir)", str(path))


def _inspect(path: Path, mode: str = "ro") -> tuple[list[str], list[str]]:
    """(quick_check problems, user tables), read through a read-only connection.

    A rollback-mode file left with a hot journal by a crash cannot be read read-only (SQLite
    must roll the journal back first): then it is read through a read-write connection, which
    does that rollback, as any program opening it would.
    """
    uri = f"file:{quote(str(path.resolve()))}?mode={mode}"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=30)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open the database file {path}: {exc}", str(path)) from None
    try:
        rows = [str(r[0]) for r in conn.execute("PRAGMA quick_check(10)").fetchall()]
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    except sqlite3.DatabaseError as exc:
        text = str(exc)
        if mode == "ro" and getattr(exc, "sqlite_errorname", "") == "SQLITE_READONLY_ROLLBACK":
            conn.close()
            return _inspect(path, "rw")
        if any(b in text for b in _BUSY):
            raise DatabaseUnavailableError(f"{path}: {text} (another process holds it)", str(path)) from None
        raise CorruptDatabaseError(
            f"{path}: the database is damaged ({_one_line(text)}); restore it from a backup", str(path)) from None
    finally:
        conn.close()
    return ([] if rows == ["ok"] else rows), tables


def open_error(url: str, exc: BaseException) -> VQScopeError:
    """The one-line, typed error for a database that failed to open or migrate (no credentials)."""
    where = safe_url(url)
    path = sqlite_file(url)
    orig = getattr(exc, "orig", None) or exc
    reason = redact_text(_one_line(str(orig)))
    if type(exc).__name__ == "CommandError" or "Can't locate revision" in reason:  # alembic: a newer schema
        return SchemaTooNewError(
            f"database {where} has a schema this vqscope does not know ({reason}); it was upgraded by a newer "
            "vqscope: run that version, or restore a backup", where)
    if path is not None:
        if any(b in reason for b in _BUSY):
            return DatabaseUnavailableError(f"database file {path}: {reason} (another process holds it)", str(path))
        if "malformed" in reason or "not a database" in reason:
            return CorruptDatabaseError(f"{path}: the database is damaged ({reason})", str(path))
        return StorageError(f"cannot open the database file {path}: {reason}", str(path))
    return DatabaseUnavailableError(f"cannot connect to the database {where}: {reason}", where)



def _one_line(text: str) -> str:
    return " ".join(str(text).replace("*** in database main ***", "").split())


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _describe(header: bytes) -> str:
    for magic, name in _KNOWN_HEADERS:
        if header.startswith(magic):
            return f"it is {name}"
    if len(header) < len(SQLITE_MAGIC) and SQLITE_MAGIC.startswith(header):
        return f"only {len(header)} bytes: a truncated copy"
    try:
        header.decode("utf-8")
        return "it is a text file"
    except UnicodeDecodeError:
        return f"it starts with {header[:8]!r}"
