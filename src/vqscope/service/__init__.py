"""The vqscope HTTP service: a job API, a persistent store, workers, alerts, a dashboard, studies.

    config.py       ServiceConfig: data folder, database URL, model, tokens, limits
    startup.py      the port and the listening socket, checked before anything else starts
    store.py        SQLAlchemy tables + JobStore (migrations/ holds the Alembic revisions)
    integrity.py    a database file checked before it is opened (empty, foreign, damaged)
    leftovers.py    uploads and downloads a killed process left behind, removed at start
    idempotency.py  Idempotency-Key: a retried submit returns the first answer's jobs
    auth.py         who may do what (admin, submit, read tokens), checked before a body is read
    limits.py       body size limits per route, enforced while the body streams in
    schemas.py      request and response bodies, with their bounds
    redact.py       what responses and logs show of URLs, webhooks and storage paths
    sources.py      uploads, server paths, URLs: checked, size-limited, durable
    outbound.py     fetches and webhooks to public addresses only, pinned, with a deadline
    worker.py       WorkerPool: leased jobs, one scoring process per slot, crash recovery
    scoring.py      the scoring process: fetch, check, score one job (killable)
    job_limits.py   each job's wall-clock limit
    waiting.py      long polls (?wait=) that hold no thread, bounded
    outage.py       a database outage answered as a JSON 503 with Retry-After
    alerts.py       alert rules over recent results, webhook notifications
    dashboard.py    the dashboard's numbers; static/ the pages (no external assets)
    metrics.py      Prometheus /metrics; http_metrics.py the per-route request metrics
    studies.py      rating studies: the operator's API and the raters' page
    app.py          the FastAPI app wiring it all together

`vqscope serve` runs it; `create_app(ServiceConfig(...))` gives the ASGI app for any server
(workers score in child processes: a script that builds the app runs it under
`if __name__ == "__main__":`).
"""

from __future__ import annotations

from .config import ServiceConfig


def create_app(config: ServiceConfig, **kwargs):
    from .app import create_app as _create

    return _create(config, **kwargs)


def serve(config: ServiceConfig, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info",
          announce_token: bool = False) -> None:
    """Run the service until interrupted (SIGINT/SIGTERM finish or hand back jobs in flight).

    In order, each failing with one typed line (see errors.py for the exit codes): the port
    (ConfigError), the socket (ListenError: in use, not allowed), the data folder and the
    database (StorageError, DatabaseUnavailableError), the model; then leftovers of killed
    uploads are removed (leftovers.py) and uvicorn serves on the socket bound here.
    `announce_token`: say where the generated write token is kept (once the port is ours).
    """
    import logging
    import sys

    import uvicorn

    from .leftovers import clean_leftovers
    from .startup import address, check_port, listen

    check_port(port)
    sock = listen(host, port)
    try:
        app = create_app(config)
        if announce_token:
            print(f"vqscope: write token: in {config.data_dir / 'token'}", file=sys.stderr)
        cleanup = clean_leftovers(app.state.service.store, config)
        if cleanup.count:
            print(f"vqscope: removed {cleanup.count} leftover file(s) of killed uploads", file=sys.stderr)
        if logging.getLevelName(log_level.upper()) <= logging.INFO:
            print(f"vqscope: serving on {address(sock)}", file=sys.stderr)
        server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on",
                                               timeout_graceful_shutdown=15))
        try:
            server.run(sockets=[sock])
        except SystemExit as exc:  # uvicorn's own exit when the app's start-up (lifespan) failed
            raise RuntimeError(f"the service did not start (uvicorn exit {exc.code}; see the log above)") from None
    finally:
        sock.close()


__all__ = ["ServiceConfig", "create_app", "serve"]
