"""Workers: take jobs from the store and score them, at most `workers` at a time per process.

Each worker is a thread with its own loaded model (PyTorch and FFmpeg release the GIL, so
threads use the cores; separate model instances keep backbones free of shared state). A
heartbeat thread renews the lease of every job in flight; if the process dies, the leases run
out and any instance takes the jobs over (see store.py). Idle workers wake at once for jobs
submitted to this process and poll for jobs submitted elsewhere (another instance on the same
database). A database that is briefly unreachable costs a retry, never a worker.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from ..errors import VQScopeError
from .config import ServiceConfig
from .metrics import ServiceMetrics
from .sources import download, remove_quietly
from .store import Job, JobStore

log = logging.getLogger("vqscope.service")


class WorkerPool:
    def __init__(
        self,
        store: JobStore,
        config: ServiceConfig,
        model_factory: Callable[[], Any],
        metrics: ServiceMetrics | None = None,
    ):
        self.store = store
        self.config = config
        self.model_factory = model_factory
        self.metrics = metrics
        self.worker_id = f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._in_flight: dict[int, Job] = {}
        self._threads: list[threading.Thread] = []
        self.peak_in_flight = 0

    # -- life cycle -----------------------------------------------------------------------
    def start(self) -> None:
        if self.config.torch_threads:
            import torch

            torch.set_num_threads(self.config.torch_threads)
        for i in range(self.config.workers):
            t = threading.Thread(target=self._run, name=f"vqscope-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        hb = threading.Thread(target=self._heartbeat, name="vqscope-heartbeat", daemon=True)
        hb.start()
        self._threads.append(hb)

    def wake(self) -> None:
        """A job was submitted here: look now rather than at the next poll."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking jobs; wait for jobs in flight, then hand back what is still running."""
        self._stop.set()
        self._wake.set()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        if self.in_flight():
            try:
                released = self.store.release(self.worker_id)
                log.info("handed %d unfinished job(s) back to the queue", released)
            except Exception:  # the lease will run out instead
                log.warning("could not hand unfinished jobs back; their leases will expire", exc_info=True)

    def in_flight(self) -> list[Job]:
        with self._lock:
            return list(self._in_flight.values())

    # -- threads ----------------------------------------------------------------------------
    def _run(self) -> None:
        model = None
        backoff = self.config.poll_s
        while not self._stop.is_set():
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
            with self._lock:
                self._in_flight[job.seq] = job
                self.peak_in_flight = max(self.peak_in_flight, len(self._in_flight))
            try:
                if model is None:
                    model = self.model_factory()
                self.process(job, model)
            except Exception:
                # The result could not be recorded (database gone?): the lease runs out and
                # the job is scored again; nothing is lost.
                log.exception("job %s could not be recorded; it will be retried", job.id)
            finally:
                with self._lock:
                    self._in_flight.pop(job.seq, None)

    def _heartbeat(self) -> None:
        interval = max(self.config.lease_s / 3.0, 0.05)
        while not self._stop.wait(interval):
            seqs = [j.seq for j in self.in_flight()]
            if seqs:
                try:
                    self.store.renew(self.worker_id, seqs, self.config.lease_s)
                except Exception:
                    log.warning("lease renewal failed", exc_info=True)

    # -- one job --------------------------------------------------------------------------
    def process(self, job: Job, model: Any) -> None:
        """Score one job and record the outcome.

        Scoring failures (typed input errors, and bugs) are recorded on the job. Failing to
        *record* propagates: the job stays leased to us, the lease runs out, it runs again.
        """
        started = time.perf_counter()
        local: Path | None = None
        fetched = False
        record: dict[str, Any] | None = None
        error: tuple[str, str] | None = None
        try:
            if job.source_kind == "url":
                local = download(job.source, self.config.downloads_dir, job.id, self.config.max_upload_bytes)
                fetched = True
            else:
                local = Path(job.source)
            options = {**self.config.score_options, **job.options}
            result = model.score(local, max_clips=options.get("max_clips"), clip_seconds=options.get("clip_seconds"))
            record = result.to_dict()
            record["video"] = job.video  # the name the client knows, not our storage path
        except VQScopeError as exc:
            error = (exc.kind, exc.message)
        except Exception as exc:  # a bug: record it on the job rather than retrying forever
            log.exception("internal error while scoring job %s", job.id)
            error = ("internal_error", f"{type(exc).__name__}: {exc}")
        finally:
            if fetched and local is not None:
                remove_quietly(local)
        if record is not None:
            finished = self.store.complete(job, record)
        else:
            assert error is not None
            finished = self.store.fail(job, error[0], error[1], getattr(model, "id", None))
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
