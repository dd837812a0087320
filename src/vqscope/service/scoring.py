"""The scoring process: one per worker slot, it fetches, opens and scores videos for the pool.

Why a process and not a thread: a thread stuck in `open()` on a FIFO, in a decoder or in a
read from a server that trickles bytes cannot be stopped; a process can be killed, and the
pool (worker.py) kills and replaces it when a job exceeds its time limit. Why persistent: the
model is loaded once per process, not once per job, and a new process starts in tens of
milliseconds because it is forked from a server process (multiprocessing's "forkserver") that
imported vqscope, PyTorch and FFmpeg once. The database stays in the parent: this process only
turns a task into a result record or a typed error, so killing it can never leave a half
written row.

The conversation over the pipe (parent -> child, then child -> parent):
    ("job", ScoreTask)  ->  ("opening",)  ("duration", seconds | None)  then
                            ("done", record)  or  ("failed", kind, message, model_id, traceback | None)
    ("stop",) or EOF    ->  the process exits
and once at start: ("ready", pid) after the model loaded, or ("start_failed", message).
"The input is local" (opening) and "its duration is known" are what the pool's time limit
follows (job_limits.py).
"""

from __future__ import annotations

import os
import select
import signal
import stat
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import VQScopeError
from .sources import NotARegularFileError


@dataclass(frozen=True)
class ScoreTask:
    """What the scoring process needs of a job (plain values: it crosses a pipe)."""

    job_id: str
    source_kind: str
    source: str
    video: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ScoringSettings:
    """The part of ServiceConfig the scoring process reads."""

    model_path: str
    downloads_dir: Path
    max_download_bytes: int
    score_options: dict[str, Any] = field(default_factory=dict)
    torch_threads: int | None = None
    allow_fetch: tuple[str, ...] = ()  # ServiceConfig.allow_fetch: where URL jobs may connect besides public addresses
    fetch_timeout_s: float = 300.0  # a whole download


def require_regular_file(path: str | os.PathLike[str], name: str) -> None:
    """Refuse anything but a regular file, from its stat (which never opens it).

    Submission checks this too (sources.check_path), but the file can change in between; this
    is the last look before the decoder opens it. (A directory passes: the decoder's own check
    names it.)"""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # missing or unreadable: the decoder's own checks give the typed error
    if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        what = "a pipe" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
        raise NotARegularFileError(f"{name}: not a regular file ({what} is not a video)", name)


def child_main(conn: Any, settings: ScoringSettings) -> None:
    """The scoring process's life: load the model, then score tasks until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent, which stops us
    _exit_with_the_service(conn)
    try:
        if settings.torch_threads:
            import torch

            torch.set_num_threads(settings.torch_threads)
        from ..model import Model

        model = Model.load(settings.model_path)
    except Exception as exc:  # the parent loaded the same file: this is unexpected, say why
        conn.send(("start_failed", f"{type(exc).__name__}: {exc}".splitlines()[0]))
        return
    conn.send(("ready", os.getpid()))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if message[0] != "job":
            return
        conn.send(score_task(message[1], model, settings, conn.send))


def score_task(task: ScoreTask, model: Any, settings: ScoringSettings, report: Any) -> tuple:
    """Fetch (URLs), check, probe and score one video; the outcome as a message for the parent."""
    from ..video import probe
    from .outbound import FetchPolicy
    from .sources import download, remove_quietly

    local: Path | None = None
    fetched = False
    try:
        if task.source_kind == "url":
            local = download(task.source, settings.downloads_dir, task.job_id, settings.max_download_bytes,
                             policy=FetchPolicy.from_entries(settings.allow_fetch), deadline_s=settings.fetch_timeout_s)
            fetched = True
        else:
            local = Path(task.source)
        report(("opening",))
        require_regular_file(local, task.video)
        try:
            duration = probe(local).duration_s
        except VQScopeError:
            duration = None  # scoring below raises the same typed error, exactly as `vqscope score` does
        report(("duration", duration))
        options = {**settings.score_options, **task.options}
        result = model.score(local, max_clips=options.get("max_clips"), clip_seconds=options.get("clip_seconds"))
        record = result.to_dict()
        record["video"] = task.video  # the name the client knows, not our storage path
        return ("done", record)
    except VQScopeError as exc:
        return ("failed", exc.kind, exc.message, getattr(model, "id", None), None)
    except Exception as exc:  # a bug: recorded on the job rather than retried forever
        return ("failed", "internal_error", f"{type(exc).__name__}: {exc}".splitlines()[0],
                getattr(model, "id", None), traceback.format_exc())
    finally:
        if fetched and local is not None:
            remove_quietly(local)


def _exit_with_the_service(conn: Any) -> None:
    """Exit as soon as the service's end of our pipe closes, whatever we are doing.

    The service holds the only other end, so it closes when the service dies, even by kill -9:
    a scoring process never outlives it, not even one stuck in open() or in a download. (Our
    parent is the fork server, which waits for its children before it exits, so a
    parent-death signal would not do.) The watch asks for "peer hung up" only, never for
    incoming data, so it does not compete with the main thread's reads.
    """
    if not hasattr(select, "poll"):
        return
    hangup = getattr(select, "POLLRDHUP", 0) | select.POLLHUP
    poller = select.poll()
    poller.register(conn.fileno(), hangup)

    def watch() -> None:
        while True:
            if any(events & (hangup | select.POLLERR | select.POLLNVAL) for _, events in poller.poll()):
                os._exit(0)

    threading.Thread(target=watch, name="vqscope-service-watch", daemon=True).start()
