"""Workers: take jobs from the store and score them, at most `workers` at a time per process.

Each worker slot is a thread of the service (it claims jobs, watches the clock and records
outcomes in the database) and a scoring *process* of its own (scoring.py: fetches, opens and
scores; the model loaded once per process). Why a process: a job can hang where no timeout
reaches, in `open()`, a decoder or a read from a server that trickles bytes, and only a process
can be stopped. When a job runs past its time limit (job_limits.py) the slot kills its process,
fails the job "timed_out" (not retried: it would hang again) and starts a new process; when a
process dies on its own, its job goes back to the queue with its attempt counted (a job that
kills its worker `max_attempts` times is failed "gave_up" by the store) and the slot starts a
new process.

A heartbeat thread renews the lease of every job in flight that is still within its time
limit: a job past its limit is never renewed, so if its process cannot be killed the lease
runs out and the job is taken over (and counted) rather than held forever. If the service
dies, the leases run out and any instance takes the jobs over (see store.py). Idle workers
wake at once for jobs submitted to this process and poll for jobs submitted elsewhere. A
database that is briefly unreachable costs a retry, never a worker.

`health()` says what is wrong, for /healthz: a scoring process that is not running, a job past
its limit not yet stopped, a slot or heartbeat thread that died.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from multiprocessing.connection import wait as wait_for
from pathlib import Path
from typing import Any

from ..zoo import resolve_model_path
from .config import ServiceConfig
from .job_limits import FETCH_GRACE_S, Allowance, JobLimits
from .metrics import ServiceMetrics
from .scoring import ScoreTask, ScoringSettings, child_main
from .sources import remove_quietly
from .store import Job, JobStore

log = logging.getLogger("vqscope.service")

START_TIMEOUT_S = 120.0  # a scoring process that is not ready by then is killed and started again
KILL_WAIT_S = 5.0  # a process alive this long after SIGKILL (uninterruptible sleep) is logged
_PRELOAD = ["vqscope.service.scoring", "vqscope.model", "vqscope.video"]


def process_context() -> Any:
    """Forkserver where there is one: new scoring processes fork from a server that imported
    vqscope, PyTorch and FFmpeg once (tens of ms each, against seconds for a fresh
    interpreter), and never from the service itself, whose threads make fork unsafe."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)
        return ctx
    return multiprocessing.get_context("spawn")


@dataclass
class Slot:
    """One worker: its scoring process and the job it runs. Changed under the pool's lock."""

    index: int
    process: Any = None
    conn: Any = None
    pid: int | None = None
    state: str = "stopped"  # starting | idle | busy | dead | stopped
    job: Job | None = None
    allowance: Allowance | None = None
    job_started: float | None = None  # monotonic
    thread: threading.Thread | None = None


def _exited(process: Any) -> bool:
    """Whether a process ended, without reaping it (safe from any thread)."""
    return process is None or bool(wait_for([process.sentinel], 0))


class WorkerPool:
    def __init__(
        self,
        store: JobStore,
        config: ServiceConfig,
        model_path: str | os.PathLike[str] | None = None,
        metrics: ServiceMetrics | None = None,
    ):
        """`model_path`: the model file (None: `config.model`'s). Scoring processes load the
        model themselves, so they are given its path, not a loaded model."""
        self.store = store
        self.config = config
        self.metrics = metrics
        model_path = model_path if model_path is not None else resolve_model_path(config.model)
        self.settings = ScoringSettings(
            model_path=os.fspath(model_path), downloads_dir=config.downloads_dir,
            max_download_bytes=config.max_upload_bytes, score_options=dict(config.score_options),
            torch_threads=config.torch_threads, allow_fetch=config.allow_fetch, fetch_timeout_s=config.fetch_timeout_s,
        )
        self.limits = JobLimits(fixed_s=config.job_timeout_s, fetch_s=config.fetch_timeout_s + FETCH_GRACE_S)
        self.worker_id = f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.slots = [Slot(i) for i in range(config.workers)]
        self._context = process_context()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._in_flight: dict[int, Job] = {}
        self._heartbeat_thread: threading.Thread | None = None
        self._started = False
        self.peak_in_flight = 0
        if metrics is not None:
            metrics.busy_workers.set_function(lambda: float(len(self.in_flight())))
            metrics.workers_up.set_function(lambda: float(self._ready_count()))

    # -- life cycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Start the scoring processes (in parallel) and wait until they are ready, then the threads."""
        if self.config.torch_threads:
            import torch

            torch.set_num_threads(self.config.torch_threads)
        self._started = True
        for slot in self.slots:
            self._launch(slot)
        for slot in self.slots:
            self._await_ready(slot)  # a failure is logged; the slot's thread keeps trying
        for slot in self.slots:
            slot.thread = threading.Thread(target=self._run, args=(slot,), name=f"vqscope-worker-{slot.index}",
                                           daemon=True)
            slot.thread.start()
        self._heartbeat_thread = threading.Thread(target=self._heartbeat, name="vqscope-heartbeat", daemon=True)
        self._heartbeat_thread.start()

    def wake(self) -> None:
        """A job was submitted here: look now rather than at the next poll."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking jobs; let jobs in flight finish for up to `timeout` s, then stop their
        processes and hand the jobs back to the queue: their attempts stay counted, and those
        within their time limit get a spare start (see JobStore.release for the rule)."""
        self._stop.set()
        self._wake.set()
        deadline = time.monotonic() + timeout
        threads = [s.thread for s in self.slots if s.thread is not None]
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        now = time.monotonic()
        with self._lock:  # interrupted by us, within their limit: not their fault (see JobStore.release)
            spare = [s.job.seq for s in self.slots if s.job and s.allowance and now < s.allowance.deadline]
        for slot in self.slots:  # still scoring after the grace period
            if slot.thread is not None and slot.thread.is_alive():
                self._signal_kill(slot.process)
        for t in threads:
            t.join(2.0)
        if self._heartbeat_thread is not None:
            self._heartbeat_thread.join(2.0)
        if self._started:
            try:
                released = self.store.release(self.worker_id, spare=spare,
                                              spare_up_to=2 * self.config.max_attempts)
                if released:
                    log.info("handed %d unfinished job(s) back to the queue", released)
            except Exception:  # the lease will run out instead
                log.warning("could not hand unfinished jobs back; their leases will expire", exc_info=True)
        for slot in self.slots:
            self._close(slot)

    def in_flight(self) -> list[Job]:
        with self._lock:
            return list(self._in_flight.values())

    # -- what /healthz reports -----------------------------------------------------------------
    def health(self) -> list[str]:
        """One line per problem; empty when every worker is alive and no job is past its limit.
        (Nothing to report for a pool that was never started: an app without background work.)"""
        if not self._started:
            return []
        problems = []
        if self._stop.is_set():
            problems.append("the workers are stopping")
        if self._heartbeat_thread is None or not self._heartbeat_thread.is_alive():
            problems.append("the lease heartbeat thread is not running")
        now = time.monotonic()
        with self._lock:
            for slot in self.slots:
                name = f"worker {slot.index}"
                if slot.thread is None or not slot.thread.is_alive():
                    problems.append(f"{name}: its thread is not running")
                if slot.state == "starting":
                    problems.append(f"{name}: its scoring process is starting")
                elif slot.state in ("dead", "stopped") or _exited(slot.process):
                    pid = f" (pid {slot.pid})" if slot.pid else ""
                    problems.append(f"{name}: its scoring process{pid} is not running")
                if slot.job is not None and slot.allowance is not None and now > slot.allowance.deadline:
                    problems.append(f"{name}: job {slot.job.id} is past its time limit of "
                                    f"{slot.allowance.describe()} and not yet stopped")
        return problems

    def states(self) -> list[dict[str, Any]]:
        """Each worker's process and job, for /healthz."""
        now = time.monotonic()
        with self._lock:
            return [
                {"worker": s.index, "pid": s.pid, "state": s.state, "job": s.job.id if s.job else None,
                 "running_s": round(now - s.job_started, 1) if s.job and s.job_started else None,
                 "limit_s": round(s.allowance.deadline - s.job_started, 1) if s.job and s.allowance
                 and s.job_started else None}
                for s in self.slots
            ]

    def _ready_count(self) -> int:
        with self._lock:
            return sum(s.state in ("idle", "busy") and not _exited(s.process) for s in self.slots)

    # -- a slot's thread ------------------------------------------------------------------------
    def _run(self, slot: Slot) -> None:
        backoff = self.config.poll_s
        restart_wait = 1.0
        while not self._stop.is_set():
            if slot.state != "idle" or _exited(slot.process):  # died, timed out, or never started
                if not self._replace(slot):
                    self._stop.wait(restart_wait)
                    restart_wait = min(restart_wait * 2, 30.0)
                    continue
                restart_wait = 1.0
            try:
                job = self.store.claim(self.worker_id, self.config.lease_s)
            except Exception:
                log.warning("cannot reach the job database; retrying in %.1f s", backoff, exc_info=True)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            backoff = self.config.poll_s
            if job is None:
                self._wake.wait(self.config.poll_s)
                self._wake.clear()
                continue
            if self.metrics is not None and job.attempts == 1 and job.started_at is not None:
                self.metrics.queue_wait.observe(max(0.0, job.started_at - job.created_at))
            try:
                self.process(slot, job)
            except Exception:
                # The outcome could not be recorded (database gone?): the lease runs out and
                # the job runs again; nothing is lost.
                log.exception("job %s could not be recorded; it will be retried", job.id)
            finally:
                self._clear(slot)

    def process(self, slot: Slot, job: Job) -> None:
        """Run one job on the slot's scoring process, within its time limit, and record the outcome."""
        started = time.perf_counter()
        allowance = self.limits.at_start(job.source_kind, time.monotonic())
        with self._lock:
            slot.job, slot.allowance, slot.job_started, slot.state = job, allowance, allowance.since, "busy"
            self._in_flight[job.seq] = job
            self.peak_in_flight = max(self.peak_in_flight, len(self._in_flight))
        outcome: tuple | None = None  # ("done", record) / ("failed", kind, message, model, tb); None: the process died
        try:
            slot.conn.send(("job", ScoreTask(job.id, job.source_kind, job.source, job.video, job.options)))
        except (OSError, ValueError):
            pass  # it died meanwhile: noticed below
        else:
            while True:
                remaining = allowance.deadline - time.monotonic()
                ready = wait_for([slot.conn, slot.process.sentinel], max(0.0, remaining))
                if not ready and remaining <= 0:  # (an answer already waiting is still taken)
                    self._time_out(slot, job, allowance, started)
                    return
                if slot.conn in ready:
                    try:
                        message = slot.conn.recv()
                    except (EOFError, OSError):
                        break
                    if message[0] in ("done", "failed"):
                        outcome = message
                        break
                    allowance = self.limits.after(message, allowance, time.monotonic())
                    with self._lock:
                        slot.allowance = allowance
                elif ready:
                    break  # the process ended without an answer
        if outcome is None:
            self._died(slot, job)
            return
        with self._lock:
            slot.state = "idle"
        self._record(job, outcome, started)

    # -- outcomes -------------------------------------------------------------------------------
    def _record(self, job: Job, outcome: tuple, started: float) -> None:
        """Store a result or a typed error. Failing to *record* propagates (see _run)."""
        if outcome[0] == "done":
            record = outcome[1]
            finished = self.store.complete(job, record)
        else:
            _, kind, message, model_id, trace = outcome
            if trace:
                log.error("internal error while scoring job %s:\n%s", job.id, trace.rstrip())
            record = None
            finished = self.store.fail(job, kind, message, model_id)
        if not finished:  # another worker took over after our lease ran out, and won
            return
        if job.delete_source and not self.config.keep_inputs:
            remove_quietly(job.source)
        if self.metrics is not None:
            self.metrics.job_finished(
                "done" if record else "failed",
                record["grade"] if record else None,
                time.perf_counter() - started,
                record["score"] if record else None,
                record["scaled_score"] if record else None,
            )

    def _time_out(self, slot: Slot, job: Job, allowance: Allowance, started: float) -> None:
        """The job ran past its limit: stop its process for good, fail the job, start a new process."""
        log.warning("job %s ran past its time limit of %s; stopping scoring process %s", job.id,
                    allowance.describe(), slot.pid)
        if not self._kill(slot):
            return  # stopping the service, and the process would not die: the job is handed back
        self._remove_downloads(job)
        message = f"no result within the job's time limit of {allowance.describe()}; its worker process was stopped"
        if self.metrics is not None:
            self.metrics.timed_out.inc()
            self.metrics.worker_restarts.labels(reason="timed_out").inc()
        self._record(job, ("failed", "timed_out", message, None, None), started)

    def _died(self, slot: Slot, job: Job) -> None:
        """The scoring process ended during a job: not ours to judge; the job is queued again,
        its attempt counted, so a job that kills its worker every time ends "gave_up"."""
        with self._lock:
            slot.state = "dead"
        if self._stop.is_set():
            return  # we stopped it (shutdown): stop() hands the job back
        code = slot.process.exitcode if slot.process is not None else None
        log.warning("scoring process %s died (exit code %s) during job %s; the job goes back to the queue",
                    slot.pid, code, job.id)
        self._remove_downloads(job)
        if self.metrics is not None:
            self.metrics.worker_restarts.labels(reason="died").inc()
        try:
            self.store.release(self.worker_id, [job.seq])
        except Exception:
            log.warning("could not hand job %s back; its lease will expire", job.id, exc_info=True)

    def _remove_downloads(self, job: Job) -> None:
        """What a killed process left of a URL download (the file or its .part)."""
        folder = Path(self.settings.downloads_dir)
        for leftover in folder.glob(f"{job.id}*"):
            remove_quietly(leftover)

    def _clear(self, slot: Slot) -> None:
        with self._lock:
            if slot.job is not None:
                self._in_flight.pop(slot.job.seq, None)
            slot.job = slot.allowance = slot.job_started = None

    # -- scoring processes ------------------------------------------------------------------------
    def _launch(self, slot: Slot) -> None:
        """Start a scoring process (its model loads meanwhile: see _await_ready)."""
        try:
            parent_end, child_end = self._context.Pipe()
            process = self._context.Process(target=child_main, args=(child_end, self.settings),
                                            name=f"vqscope-scorer-{slot.index}", daemon=True)
            process.start()
        except OSError as exc:  # no processes, pipes or fork server to be had: try again later
            log.error("cannot start a scoring process for worker %d: %s", slot.index, exc)
            with self._lock:
                slot.process, slot.conn, slot.pid, slot.state = None, None, None, "dead"
            return
        child_end.close()
        with self._lock:
            slot.process, slot.conn, slot.pid, slot.state = process, parent_end, process.pid, "starting"

    def _await_ready(self, slot: Slot, timeout: float = START_TIMEOUT_S) -> bool:
        """Wait for the process's model to load; False (logged) if it did not."""
        if slot.process is None:
            return False
        deadline = time.monotonic() + timeout
        problem = f"not ready after {timeout:.0f} s"
        while not self._stop.is_set() and time.monotonic() < deadline:
            ready = wait_for([slot.conn, slot.process.sentinel], min(0.5, max(0.0, deadline - time.monotonic())))
            if slot.conn in ready:
                try:
                    message = slot.conn.recv()
                except (EOFError, OSError):
                    message = ("start_failed", f"exited with code {slot.process.exitcode}")
                if message[0] == "ready":
                    with self._lock:
                        slot.state = "idle"
                    return True
                problem = message[1]
                break
            if ready:
                problem = f"exited with code {slot.process.exitcode}"
                break
        if not self._stop.is_set():
            log.error("scoring process %d (pid %s) could not start: %s", slot.index, slot.pid, problem)
        self._kill(slot)
        return False

    def _replace(self, slot: Slot) -> bool:
        """A new scoring process for a slot whose process died (or never started)."""
        if slot.process is not None:
            if slot.state != "dead" and not self._stop.is_set():  # noticed while idle
                log.warning("scoring process %s exited (code %s); starting a new one", slot.pid,
                            slot.process.exitcode)
                if self.metrics is not None:
                    self.metrics.worker_restarts.labels(reason="died").inc()
            self._kill(slot)
        self._launch(slot)
        return self._await_ready(slot)

    def _kill(self, slot: Slot) -> bool:
        """SIGKILL the slot's process and reap it; True once it is gone. A process that does
        not die (uninterruptible sleep) keeps its job listed as stuck in health() while this
        retries, until it dies or the service stops."""
        process = slot.process
        if process is None:
            return True
        since, warned = time.monotonic(), False
        while not _exited(process):
            self._signal_kill(process)
            process.join(0.5)
            if _exited(process):
                break
            if self._stop.is_set():
                return False
            if not warned and time.monotonic() - since > KILL_WAIT_S:
                log.error("scoring process %s did not die within %.0f s of SIGKILL; still trying", slot.pid,
                          KILL_WAIT_S)
                warned = True
        process.join(0)
        with self._lock:
            slot.state = "dead"
        return True

    def _signal_kill(self, process: Any) -> None:
        if process is not None and process.pid is not None and not _exited(process):
            try:
                os.kill(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _close(self, slot: Slot) -> None:
        """At stop: ask an idle process to exit, kill one that does not."""
        process = slot.process
        if process is None:
            return
        if not _exited(process):
            try:
                slot.conn.send(("stop",))
            except (OSError, ValueError):
                pass
            process.join(2.0)
        if not _exited(process):
            self._signal_kill(process)
            process.join(2.0)
        with self._lock:
            slot.state = "stopped"

    # -- leases ---------------------------------------------------------------------------------
    def renew_leases(self) -> int:
        """Renew the lease of every job in flight that is within its time limit (never one past it)."""
        now = time.monotonic()
        with self._lock:
            seqs = [s.job.seq for s in self.slots
                    if s.job is not None and s.allowance is not None and now < s.allowance.deadline]
        return self.store.renew(self.worker_id, seqs, self.config.lease_s) if seqs else 0

    def _heartbeat(self) -> None:
        interval = max(self.config.lease_s / 3.0, 0.05)
        while not self._stop.wait(interval):
            try:
                self.renew_leases()
            except Exception:
                log.warning("lease renewal failed", exc_info=True)
