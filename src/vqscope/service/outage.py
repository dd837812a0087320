"""A database outage answered as one: a JSON 503 with Retry-After, not a plain-text 500.

Why: a client (or a load balancer) can only do the right thing, wait and retry, if it can
tell "the database is down for a moment" from "the server has a bug". SQLAlchemy raises
`OperationalError` when the server is unreachable, a connection dropped, or SQLite is
locked or failing I/O; `InterfaceError` for a broken connection; `sqlalchemy.exc.TimeoutError`
when every pooled connection is busy; `DatabaseError` itself for a damaged SQLite file. Those
are 503 `database_unavailable` with `Retry-After`. The other DBAPI errors (an integrity or
programming error) are bugs: a JSON 500 `database_error`. Neither answer carries the driver's
text, which can name internal hosts and ports; the log line does (credentials redacted).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DatabaseError, DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from .redact import redact_text

log = logging.getLogger("vqscope.service")

RETRY_AFTER_S = 5
_TRANSIENT = (OperationalError, InterfaceError, PoolTimeoutError)


def is_outage(exc: BaseException) -> bool:
    """An error that waiting can cure (503), as opposed to a bug (500)."""
    return isinstance(exc, _TRANSIENT) or type(exc) is DatabaseError


def reason(exc: BaseException) -> str:
    """The driver's first line, without credentials, for the log."""
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return redact_text(text[0] if text else type(exc).__name__)


def add_database_error_handlers(app: FastAPI) -> None:
    async def _database(request: Request, exc: Exception) -> JSONResponse:
        where = f"{request.method} {request.url.path}"
        if is_outage(exc):
            log.warning("database unavailable during %s: %s: %s", where, type(exc).__name__, reason(exc))
            return JSONResponse(
                {"error": "database_unavailable",
                 "message": f"the database is unavailable; try again in {RETRY_AFTER_S} s"},
                status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})
        log.error("database error during %s: %s: %s", where, type(exc).__name__, reason(exc))
        return JSONResponse({"error": "database_error", "message": "the database refused the request (a bug in "
                             "vqscope: the server log has the details)"}, status_code=500)

    app.add_exception_handler(DBAPIError, _database)
    app.add_exception_handler(PoolTimeoutError, _database)
