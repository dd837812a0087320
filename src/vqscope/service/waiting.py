"""Long polls (`GET /api/jobs/{id}?wait=S`) that hold no thread while they wait, and are bounded.

A waiting request used to sleep in a thread of the server's pool (40 threads), so 45 waiting
clients left nothing for `/healthz` or any other plain handler. Now a waiter is an asyncio
event on the event loop; one poller per process asks the database, in one thread hop per
tick, which of the jobs being waited for have finished (so a job finished by another instance
wakes its waiters too), however many clients wait.

Waiting is bounded in total and per client (by peer address). A request over either bound is
answered at once with 429 and `Retry-After`, rather than with the job's current state: a
client looping on `?wait=` would otherwise turn the refusal into a tight loop. Behind a
reverse proxy every request has the proxy's address, so there the per-client bound is a
second total bound: set both to the same value.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Callable, Iterable

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from ..errors import ConfigError
from .store import FINISHED, JobRow, JobStore

log = logging.getLogger("vqscope.service")


class TooManyWaits(Exception):
    def __init__(self, message: str, retry_after_s: int = 1):
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s


def finished_among(store: JobStore) -> Callable[[list[str]], set[str]]:
    """Which of these job ids have finished: one small query, no results loaded."""

    def query(ids: list[str]) -> set[str]:
        found: set[str] = set()
        with store.engine.connect() as conn:
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                rows = conn.execute(select(JobRow.id).where(JobRow.id.in_(chunk), JobRow.state.in_(FINISHED)))
                found.update(r[0] for r in rows)
        return found

    return query


class JobWaits:
    def __init__(self, finished: Callable[[list[str]], Iterable[str]], *, max_total: int = 256,
                 max_per_client: int = 32, interval_s: float = 0.25):
        if max_total < 1 or max_per_client < 1:
            raise ConfigError("--max-waits and --max-waits-per-client must be at least 1")
        self.finished = finished
        self.max_total = max_total
        self.max_per_client = max_per_client
        self.interval_s = interval_s
        self.per_client: Counter[str] = Counter()
        self.refused = 0
        self._events: dict[str, list[asyncio.Event]] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> int:
        return sum(self.per_client.values())

    def admit(self, client: str) -> None:
        """Count a waiter in, or raise TooManyWaits (pair with `leave`)."""
        if self.waiting >= self.max_total:
            self.refused += 1
            raise TooManyWaits(f"{self.max_total} requests are already waiting for jobs on this server; "
                               "retry, or poll without ?wait=")
        if self.per_client[client] >= self.max_per_client:
            self.refused += 1
            raise TooManyWaits(f"this client already has {self.max_per_client} requests waiting for jobs; "
                               "retry, or poll without ?wait=")
        self.per_client[client] += 1

    def leave(self, client: str) -> None:
        self.per_client[client] -= 1
        if self.per_client[client] <= 0:
            del self.per_client[client]

    async def until_finished(self, job_id: str, timeout_s: float) -> bool:
        """Wait (without a thread) until the job has finished or the time is up; True if finished."""
        event = asyncio.Event()
        self._events.setdefault(job_id, []).append(event)
        self._ensure_poller()
        try:
            await asyncio.wait_for(event.wait(), timeout_s)
            return True
        except asyncio.TimeoutError:
            return False
        finally:
            waiters = self._events.get(job_id, [])
            if event in waiters:
                waiters.remove(event)
            if not waiters:
                self._events.pop(job_id, None)

    def _ensure_poller(self) -> None:
        loop = asyncio.get_running_loop()
        task = self._task
        if task is None or task.done() or task.get_loop() is not loop:
            self._task = loop.create_task(self._poll(), name="vqscope-job-waits")

    async def _poll(self) -> None:
        while self._events:
            await asyncio.sleep(self.interval_s)
            ids = list(self._events)
            if not ids:
                break
            try:
                done = await run_in_threadpool(self.finished, ids)
            except Exception:  # the database is away: waiters time out with the job's last known state
                log.warning("cannot check waited-for jobs; retrying", exc_info=True)
                continue
            for job_id in done:
                for event in self._events.get(job_id, ()):
                    event.set()
