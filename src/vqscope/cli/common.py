"""What every command shares: log lines, the progress bar, a console that survives a closed
pipe, and the service's store for the commands that work on it directly."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import Any, Iterator

from ..errors import ConfigError


def log(text: str) -> None:
    print(f"vqscope: {text}", file=sys.stderr, flush=True)


def worker_count(args: argparse.Namespace) -> int | None:
    if args.workers is not None and args.workers < 1:
        raise ConfigError("--workers must be at least 1")
    return args.workers


def stdout_console(width: int | None = None) -> Any:
    """A Rich console on stdout (`width` None: Rich's own, the terminal's or 80 for a pipe) that
    treats a closed pipe (`vqscope score F | head -1`) as the end of the reader's interest, like
    plain `print` does in `main`: Rich's own handling exits with status 1, which made a
    successful command look failed."""
    from rich.console import Console

    class _PipeConsole(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True
            raise BrokenPipeError

    return _PipeConsole(width=width)


def silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush into the closed pipe
    cannot fail and turn the exit status into an error."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout replaced by something without a file
        pass


class Progress:
    """Rich progress bar over videos (and clips of the current video); silent when disabled."""

    def __init__(self, total: int, enabled: bool, transient: bool = False):
        self.enabled = enabled
        self.total = total
        self.transient = transient
        self._progress: Any = None

    def __enter__(self) -> "Progress":
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                transient=self.transient,
            )
            self._progress.start()
            self._videos = self._progress.add_task("videos", total=self.total)
            self._clips = self._progress.add_task("clips", total=1)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def start(self, path: str) -> None:
        if self._progress is not None:
            self._progress.update(self._clips, description=os.path.basename(path)[:40], completed=0, total=1)

    def clip(self, done: int, total: int) -> None:
        if self._progress is not None:
            self._progress.update(self._clips, completed=done, total=total)

    def advance(self) -> None:
        if self._progress is not None:
            self._progress.advance(self._videos)

    def note(self, text: str) -> None:
        if self._progress is not None:
            self._progress.console.print(f"[yellow]{text}[/yellow]")
        else:
            print(f"vqscope: {text}", file=sys.stderr)


# -- the service's store, for commands that work on it directly (study, train --from-study) -----
def add_store_options(p: Any) -> None:
    """--data-dir and --db, as `vqscope serve` takes them (an argparse parser or group)."""
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="the service's data folder (default: $VQSCOPE_DATA_DIR or ~/.local/share/vqscope/service)")
    p.add_argument("--db", default=os.environ.get("VQSCOPE_DATABASE_URL"), metavar="URL",
                   help="the service's database URL (default: $VQSCOPE_DATABASE_URL, else SQLite in the data folder)")


@contextlib.contextmanager
def open_store(args: argparse.Namespace, **settings: Any) -> Iterator[tuple[Any, Any, Any]]:
    """(ServiceConfig, JobStore, StudyStore) on the store --data-dir/--db name, closed after."""
    from ..service.config import ServiceConfig, default_data_dir
    from ..service.store import JobStore
    from ..studies.store import StudyStore

    config = ServiceConfig(data_dir=Path(args.data_dir) if args.data_dir else default_data_dir(),
                           database_url=args.db, **settings)
    config.prepare()
    jobs = JobStore(config.resolved_database_url())
    try:
        yield config, jobs, StudyStore(jobs.engine)
    finally:
        jobs.close()
