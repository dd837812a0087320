"""The vqscope HTTP service: a job API, a persistent store, workers, alerts and a dashboard.

    config.py     ServiceConfig: data folder, database URL, model, token, limits
    store.py      SQLAlchemy tables + JobStore (migrations/ holds the Alembic revisions)
    sources.py    uploads, server paths, URLs: checked, size-limited, durable
    worker.py     WorkerPool: leased jobs, bounded concurrency, crash recovery
    alerts.py     alert rules over recent results, webhook notifications
    dashboard.py  the dashboard's numbers; static/ the page that draws them (no external assets)
    metrics.py    Prometheus /metrics
    app.py        the FastAPI app wiring it all together

`vqscope serve` runs it; `create_app(ServiceConfig(...))` gives the ASGI app for any server.
"""

from __future__ import annotations

from .config import ServiceConfig


def create_app(config: ServiceConfig, **kwargs):
    from .app import create_app as _create

    return _create(config, **kwargs)


def serve(config: ServiceConfig, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Run the service until interrupted (SIGINT/SIGTERM finish or hand back jobs in flight)."""
    import uvicorn

    app = create_app(config)
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=15)


__all__ = ["ServiceConfig", "create_app", "serve"]
