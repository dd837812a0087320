"""The service command: serve (its flags checked before anything starts)."""

from __future__ import annotations

import argparse
import os

from ..errors import ConfigError
from .common import log


def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve", help="run the HTTP service, its workers and the dashboard",
        description="Job API (submit uploads, server paths or URLs; fetch and list results), a persistent job "
                    "store (SQLite in the data folder, or PostgreSQL by URL), bounded workers that survive "
                    "crashes, alert rules with webhooks, a dashboard at /dashboard and Prometheus /metrics.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="jobs database, uploads and token (default: $VQSCOPE_DATA_DIR or ~/.local/share/vqscope/service)")
    p.add_argument("--db", default=os.environ.get("VQSCOPE_DATABASE_URL"), metavar="URL",
                   help="database URL, e.g. postgresql://user:pass@host/db (default: $VQSCOPE_DATABASE_URL, "
                        "else SQLite in the data folder)")
    p.add_argument("--model", "-m", default=None, help="shipped model name[@version] or a model file")
    p.add_argument("--token", default=None,
                   help="admin token: every write and read (default: $VQSCOPE_TOKEN, else DATA_DIR/token)")
    p.add_argument("--submit-token", default=None, metavar="TOKEN",
                   help="a token that submits jobs and batches and reads, but changes no alert rule or study "
                        "(default: $VQSCOPE_SUBMIT_TOKEN)")
    p.add_argument("--read-token", default=None, metavar="TOKEN",
                   help="a token that reads jobs, results, the dashboard and /metrics; reads then need a token "
                        "(default: $VQSCOPE_READ_TOKEN)")
    reads = p.add_mutually_exclusive_group()
    reads.add_argument("--open-reads", action="store_true",
                       help="reads need no token, even when listening on a non-loopback address")
    reads.add_argument("--private-reads", action="store_true",
                       help="reads need a token (read, submit or admin) even on 127.0.0.1 (default: private "
                            "when --host is not a loopback address, else open)")
    p.add_argument("--max-json-mb", type=float, default=8,
                   help="size limit of bulk JSON bodies (batches, studies; default 8); other JSON bodies 64 KB")
    p.add_argument("--max-waits", type=int, default=256, metavar="N",
                   help="requests waiting for a job (GET /api/jobs/ID?wait=) at once (default 256; beyond: 429)")
    p.add_argument("--max-waits-per-client", type=int, default=32, metavar="N",
                   help="... of them from one client address (default 32; behind a proxy set it to --max-waits)")
    p.add_argument("--workers", type=int, default=1, help="videos scored at once (default 1)")
    p.add_argument("--torch-threads", type=int, default=None, metavar="N", help="PyTorch threads of this process")
    p.add_argument("--max-upload-mb", type=float, default=512, help="upload and download size limit (default 512)")
    p.add_argument("--max-clips", type=int, default=None, help="default clip limit per video")
    p.add_argument("--clip-seconds", type=float, default=None, help="default clip length in seconds")
    p.add_argument("--path-root", action="append", default=[], metavar="DIR",
                   help="accept server paths under DIR (repeatable); without it (or --any-path) jobs by server "
                        "path are refused and only uploads and URLs are scored")
    p.add_argument("--any-path", action="store_true",
                   help="accept any server path the server's user can read (UNSAFE: whoever has the token can have "
                        "the server read its files)")
    p.add_argument("--no-urls", action="store_true", help="refuse URL submissions")
    p.add_argument("--allow-fetch", action="append", default=[], metavar="NET|HOST",
                   help="let URL jobs and webhooks reach this network (CIDR, e.g. 10.0.0.0/8, 127.0.0.1/32) or host "
                        "(files.internal, *.corp.example) although it is not public (repeatable; default: public "
                        "addresses only)")
    p.add_argument("--fetch-timeout", type=float, default=300, metavar="SECONDS",
                   help="time limit of a whole URL download, redirects included (default 300)")
    p.add_argument("--keep-inputs", action="store_true", help="keep uploaded files after their job finished")
    p.add_argument("--lease-seconds", type=float, default=30, help="a dead worker's job is taken over after this")
    p.add_argument("--poll-seconds", type=float, default=1.0, help="how often idle workers look for jobs")
    p.add_argument("--max-attempts", type=int, default=3, help="a job that kills its worker this often is failed")
    p.add_argument("--job-timeout", type=float, default=None, metavar="SECONDS",
                   help="wall-clock limit per job, download included; a job past it is stopped and fails "
                        "timed_out (default: from the video's duration, max(60 s, 10 x duration), at most 1 h, "
                        "plus the --fetch-timeout for a URL)")
    p.add_argument("--idempotency-hours", type=float, default=24, metavar="H",
                   help="how long a submission's Idempotency-Key is remembered (default 24; 0: forever)")
    p.add_argument("--alert-rules", default=None, metavar="FILE", help="JSON list of alert rules to load at start")
    p.add_argument("--alert-interval", type=float, default=30, help="seconds between alert evaluations")
    p.add_argument("--webhook", default=None, metavar="URL", help="webhook for alert rules that name none")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    p.add_argument("--migrate-only", action="store_true", help="create or upgrade the database schema and exit")
    p.set_defaults(func=_cmd_serve)


def _cmd_serve(args: argparse.Namespace) -> int:
    from pathlib import Path as _Path

    from ..service import ServiceConfig, serve
    from ..service.config import TOKEN_ENV, default_data_dir
    from ..service.startup import check_port

    check_port(args.port)  # a usage error before anything starts
    if args.max_upload_mb <= 0:
        raise ConfigError("--max-upload-mb must be positive")
    if args.any_path and args.path_root:
        raise ConfigError("--any-path accepts every path: give it or --path-root, not both")
    if args.any_path:
        log("warning: --any-path: jobs may name any file this server's user can read")
    from ..service.auth import READ_TOKEN_ENV, serve_open_reads
    from ..service.schemas import MAX_CLIP_SECONDS, MIN_CLIP_SECONDS

    if args.clip_seconds is not None and not MIN_CLIP_SECONDS <= args.clip_seconds <= MAX_CLIP_SECONDS:
        raise ConfigError(f"--clip-seconds must be between {MIN_CLIP_SECONDS:g} and {MAX_CLIP_SECONDS:g}")
    if not args.max_json_mb > 0:
        raise ConfigError("--max-json-mb must be positive")
    open_reads = serve_open_reads(args.host, args.open_reads, args.private_reads,
                                  args.read_token or os.environ.get(READ_TOKEN_ENV))
    if open_reads is False and not (args.private_reads or args.read_token or os.environ.get(READ_TOKEN_ENV)):
        log(f"reads need a token: listening on {args.host}, not a loopback address (give dashboard viewers a "
             "--read-token, or pass --open-reads)")
    score_options = {k: v for k, v in (("max_clips", args.max_clips), ("clip_seconds", args.clip_seconds)) if v}
    config = ServiceConfig(
        data_dir=_Path(args.data_dir) if args.data_dir else default_data_dir(),
        database_url=args.db, model=args.model, token=args.token, workers=args.workers,
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024), lease_s=args.lease_seconds,
        poll_s=args.poll_seconds, max_attempts=args.max_attempts, job_timeout_s=args.job_timeout,
        alert_interval_s=args.alert_interval,
        alert_rules_file=_Path(args.alert_rules) if args.alert_rules else None, default_webhook=args.webhook,
        path_roots=None if args.any_path else tuple(_Path(p) for p in args.path_root), allow_urls=not args.no_urls,
        allow_fetch=tuple(args.allow_fetch), fetch_timeout_s=args.fetch_timeout,
        keep_inputs=args.keep_inputs, torch_threads=args.torch_threads, score_options=score_options,
        read_token=args.read_token, submit_token=args.submit_token, open_reads=open_reads,
        max_json_bytes=int(args.max_json_mb * 1024 * 1024), max_waits=args.max_waits,
        max_waits_per_client=args.max_waits_per_client,
        idempotency_ttl_s=args.idempotency_hours * 3600.0,
    )
    if args.migrate_only:
        from ..service.migrations import current
        from ..service.store import JobStore, safe_url

        config.prepare()
        store = JobStore(config.resolved_database_url())
        log(f"database {safe_url(store.url)} is at schema revision {current(store.engine)}")
        store.close()
        return 0
    serve(config, host=args.host, port=args.port, log_level=args.log_level,
          announce_token=not (args.token or os.environ.get(TOKEN_ENV)))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add this group's commands to the `vqscope` parser."""
    _add_serve(sub)
