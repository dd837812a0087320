"""How long one job may run before its worker process is stopped and the job fails "timed_out".

Why a limit at all: a job can hang where no timeout of ours reaches it: `open()` on a FIFO or a
stuck network mount, a decoder that stops making progress, a server that sends one byte every
20 s (each read succeeds, so a socket timeout never fires). Only a wall-clock limit enforced
from outside the scoring process frees the worker.

Why these numbers (the automatic limit, used unless `--job-timeout` is given):
- Scoring costs a fraction of real time: a 5-minute video scores in well under a minute on 2
  cores with the shipped model. Ten times the video's duration is therefore far beyond any
  healthy job, yet still finite; a limit that fires on a slow but healthy job costs a result,
  one that fires late only costs a worker for a while, so the margin errs on the generous side.
- 60 s floor: short clips still pay fixed costs (opening, probing, the first decode, a busy
  machine); and until the duration is known (opening and probing) the floor is the limit.
- 1 h cap: a 2-hour film needs well under 30 minutes at the rate above; an hour bounds how
  long any hang holds a worker, whatever the container claims its duration is.
- Fetching a URL is counted separately, before the above: the download enforces its own
  whole-transfer deadline (`--fetch-timeout`, 300 s by default) and fails "download_failed";
  the pool allows FETCH_GRACE_S more and then kills, for what that deadline cannot interrupt
  (a name lookup that hangs, a stuck TLS handshake).

`--job-timeout SECONDS` replaces all of this by one fixed limit for the whole job (fetching,
opening, decoding and scoring together), for operators who know their workload, and for tests.
"""

from __future__ import annotations

from dataclasses import dataclass

FLOOR_S = 60.0
PER_VIDEO_SECOND = 10.0
CAP_S = 3600.0
FETCH_GRACE_S = 30.0
FETCH_S = 300.0 + FETCH_GRACE_S  # the default --fetch-timeout, plus the grace


@dataclass(frozen=True)
class Allowance:
    """A stretch of time a job may use, counted from `since` (a monotonic time), and why."""

    seconds: float
    since: float
    why: str

    @property
    def deadline(self) -> float:
        return self.since + self.seconds

    def describe(self) -> str:
        return f"{self.seconds:g} s {self.why}"


@dataclass(frozen=True)
class JobLimits:
    """The rule; `fixed_s` (from `--job-timeout`) overrides the automatic one."""

    fixed_s: float | None = None
    floor_s: float = FLOOR_S
    per_video_second: float = PER_VIDEO_SECOND
    cap_s: float = CAP_S
    fetch_s: float = FETCH_S

    def at_start(self, source_kind: str, now: float) -> Allowance:
        """When the worker takes the job: fetching a URL, or opening a file."""
        if self.fixed_s is not None:
            return Allowance(self.fixed_s, now, "set by --job-timeout")
        if source_kind == "url":
            return Allowance(self.fetch_s, now, "to fetch the URL")
        return self.opening(now)

    def opening(self, now: float) -> Allowance:
        """The input is a local file now; its duration is not known yet."""
        return Allowance(self.floor_s, now, "to open and probe the video")

    def for_duration(self, duration_s: float | None, opened_at: float) -> Allowance:
        """The video's duration is known: the scoring allowance, counted from when it was opened."""
        if duration_s is None or not duration_s > 0:
            return Allowance(self.floor_s, opened_at, "to score a video of unknown duration")
        seconds = min(self.cap_s, max(self.floor_s, self.per_video_second * duration_s))
        return Allowance(seconds, opened_at, f"to score a {duration_s:.4g} s video")

    def after(self, message: tuple, current: Allowance, now: float) -> Allowance:
        """The allowance once the scoring process reports a step (see scoring.py)."""
        if self.fixed_s is not None:
            return current
        if message[0] == "opening":
            return self.opening(now)
        if message[0] == "duration":
            return self.for_duration(message[1], current.since)
        return current
