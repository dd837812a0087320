"""Service settings: one typed object that the CLI fills and every part of the service reads.

Everything has a default that works on one machine (SQLite in a data folder, one worker, a
token generated on first start), so `vqscope serve` needs no flags; a shared deployment
changes the database URL and the worker count.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from .outbound import BadURLError, FetchPolicy, parse_target

TOKEN_ENV = "VQSCOPE_TOKEN"
DATA_DIR_ENV = "VQSCOPE_DATA_DIR"


def default_data_dir() -> Path:
    """$VQSCOPE_DATA_DIR, else the XDG data folder (~/.local/share/vqscope/service)."""
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV])
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "vqscope" / "service"


@dataclass
class ServiceConfig:
    data_dir: Path = field(default_factory=default_data_dir)
    database_url: str | None = None  # None: SQLite file DATA_DIR/vqscope.db
    model: str | None = None  # shipped name[@version] or a model file; None: the default model
    token: str | None = None  # None: $VQSCOPE_TOKEN, else DATA_DIR/token (made on first start)
    workers: int = 1  # jobs scored at once in this process
    max_upload_bytes: int = 512 * 1024 * 1024
    # who may read, request bodies and long polls (auth.py, limits.py, waiting.py)
    read_token: str | None = None  # None: $VQSCOPE_READ_TOKEN; a read token makes reads need a token
    submit_token: str | None = None  # None: $VQSCOPE_SUBMIT_TOKEN; submits jobs and batches, and reads
    open_reads: bool | None = None  # None: open unless a read token is set; False: reads need a token
    max_json_bytes: int = 8 * 1024 * 1024  # bulk JSON bodies (batches, studies); every other JSON body 64 KB
    max_waits: int = 256  # GET /api/jobs/{id}?wait= requests waiting at once, in total ...
    max_waits_per_client: int = 32  # ... and per client address (beyond either: 429 + Retry-After)
    lease_s: float = 30.0  # a running job whose worker stops renewing this long is taken over
    poll_s: float = 1.0  # idle workers look for jobs submitted by other processes this often
    max_attempts: int = 3  # a job that kills its worker this many times is failed, not retried
    job_timeout_s: float | None = None  # fixed limit per job; None: from its video's duration (job_limits.py)
    alert_interval_s: float = 30.0
    alert_rules_file: Path | None = None  # JSON list of rules loaded (upserted) at start
    default_webhook: str | None = None  # for rules that name none
    # Server paths must lie under one of these; () refuses every path (the default: a path makes
    # the server open a file as its own user), None accepts any path it can read (--any-path, unsafe).
    path_roots: tuple[Path, ...] | None = ()
    allow_fetch: tuple[str, ...] = ()  # --allow-fetch: networks and host names URL jobs/webhooks may reach
    fetch_timeout_s: float = 300.0  # a whole URL download, redirects included
    allow_urls: bool = True
    keep_inputs: bool = False  # keep uploaded/downloaded files after their job finished
    idempotency_ttl_s: float = 24 * 3600.0  # how long an Idempotency-Key is remembered; 0: forever
    torch_threads: int | None = None
    score_options: dict = field(default_factory=dict)  # defaults for max_clips / clip_seconds

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        if self.path_roots is not None:
            self.path_roots = tuple(Path(p).resolve() for p in self.path_roots)
        self.allow_fetch = tuple(self.allow_fetch)
        FetchPolicy.from_entries(self.allow_fetch)  # a bad entry fails at start, not at the first fetch
        if not self.fetch_timeout_s > 0:
            raise ConfigError("--fetch-timeout must be positive")
        if self.default_webhook is not None:
            try:
                parse_target(self.default_webhook)
            except BadURLError as exc:
                raise ConfigError(f"--webhook: {exc.message}") from None
        if self.workers < 1:
            raise ConfigError("--workers must be at least 1")
        if self.max_upload_bytes < 1:
            raise ConfigError("the upload size limit must be positive")
        if not self.lease_s > 0 or not self.poll_s > 0 or not self.alert_interval_s > 0:
            raise ConfigError("lease, poll and alert intervals must be positive")
        if self.max_attempts < 1:
            raise ConfigError("--max-attempts must be at least 1")
        if not self.idempotency_ttl_s >= 0:
            raise ConfigError("--idempotency-hours must be 0 (keys never expire) or more")
        if self.job_timeout_s is not None and not self.job_timeout_s > 0:
            raise ConfigError("--job-timeout must be a positive number of seconds")

    @property
    def fetch_policy(self) -> FetchPolicy:
        """Where URL jobs and webhooks may connect: public addresses plus --allow-fetch."""
        return FetchPolicy.from_entries(self.allow_fetch)

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def downloads_dir(self) -> Path:
        return self.data_dir / "downloads"

    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'vqscope.db').resolve()}"

    def prepare(self) -> None:
        """Create the data folders and check that they take files (a StorageError, exit 29, names
        the folder otherwise: better at start than at the first upload)."""
        from ..errors import DataFolderError

        for folder in (self.data_dir, self.uploads_dir, self.downloads_dir):
            try:
                folder.mkdir(parents=True, exist_ok=True)
                tempfile.TemporaryFile(dir=folder).close()
            except OSError as exc:
                raise DataFolderError(f"data folder {folder} is not usable: {exc.strerror or exc}", str(folder)) from None

    def resolved_token(self) -> str:
        """The write token: given, from the environment, or read from (or made in) DATA_DIR/token.

        Writes are never open: without a configured token one is generated once and kept in
        a file only the service's user can read, so a restart keeps clients working.
        """
        token = self.token or os.environ.get(TOKEN_ENV)
        if token:
            return token
        path = self.data_dir / "token"
        if path.is_file():
            try:
                return path.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                from ..errors import DataFolderError

                raise DataFolderError(f"cannot read the token file {path}: {getattr(exc, 'strerror', None) or exc}",
                                      str(path)) from None
        self.prepare()
        token = secrets.token_urlsafe(24)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(token + "\n")
        return token
