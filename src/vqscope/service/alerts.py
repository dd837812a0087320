"""Alert rules over recent results, and the webhook that hears about them.

A rule watches one number over a sliding window of finished jobs, for example "the share of
videos graded bad or poor in the last hour", and compares it with a threshold. Because scaled
scores and grades are calibrated, a rule keeps its meaning when the model is updated.

A rule is either ok or firing. It notifies its webhook when it starts firing and when it
resolves, not at every evaluation, so a bad hour is one message, not a hundred. The switch is
a conditional update in the database, so when several instances evaluate the same rules only
one of them sends. A window with fewer than `min_jobs` videos counts as "not firing": too
little data to claim a problem (and a quiet night resolves an alert).

Metrics:
- grade_share: share of done jobs whose grade (or `dimension`'s grade) is in `grades`
- mean_score / mean_scaled_score: mean raw score (or `dimension`'s score) / scaled score
- percentile_scaled_score: the `percentile`-th percentile of scaled scores
- failure_rate: share of finished jobs that failed
- queued_jobs: jobs waiting now (window and min_jobs do not apply)
"""

from __future__ import annotations

import functools
import json
import logging
import operator
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .outbound import AddressNotAllowedError, BadURLError, FetchPolicy, OutboundError, open_url, parse_target, redact
from .store import JobStore

log = logging.getLogger("vqscope.service")

Metric = Literal["grade_share", "mean_score", "mean_scaled_score", "percentile_scaled_score", "failure_rate",
                 "queued_jobs"]
OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
}


class AlertRule(BaseModel):
    """One rule, as stored and as `PUT /api/alert-rules/{name}` takes it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,100}$")
    metric: Metric
    op: Literal[">", ">=", "<", "<="] = ">"
    threshold: float
    window_s: float = Field(3600.0, gt=0, le=90 * 86400)
    min_jobs: int = Field(1, ge=1)
    grades: list[str] = Field(default_factory=lambda: ["bad", "poor"])
    percentile: float = Field(10.0, ge=0, le=100)
    dimension: str | None = None
    tag: str | None = None  # only jobs with this tag
    webhook: str | None = Field(None, description="http(s) URL with a host; reached only at a public address "
                                "unless the server allows more (--allow-fetch)")
    description: str = ""

    @field_validator("webhook")
    @classmethod
    def _webhook_is_http_url(cls, url: str | None) -> str | None:
        """http(s) with a host, valid characters and port; where it may connect is checked when sending."""
        if url is not None:
            try:
                parse_target(url)
            except BadURLError as exc:
                raise ValueError(exc.message.split(": ", 1)[-1]) from None
        return url

    @model_validator(mode="after")
    def _dimension_fits_metric(self) -> "AlertRule":
        if self.dimension and self.metric not in ("grade_share", "mean_score"):
            raise ValueError("`dimension` applies to grade_share and mean_score only")
        if self.metric == "grade_share" and not self.grades:
            raise ValueError("grade_share needs at least one grade")
        return self


@dataclass
class Evaluation:
    value: float | None
    count: int  # videos in the window the value is over
    firing: bool


def evaluate(rule: AlertRule, store: JobStore, now: float) -> Evaluation:
    since = now - rule.window_s
    if rule.metric == "queued_jobs":
        queued = store.counts()["queued"]
        return Evaluation(float(queued), queued, OPS[rule.op](queued, rule.threshold))
    rows = store.finished_since(since, tag=rule.tag)
    done = [r for r in rows if r.state == "done"]
    value: float | None
    if rule.metric == "failure_rate":
        count = len(rows)
        value = (len(rows) - len(done)) / count if count else None
    elif rule.dimension:
        dims = [(score, grade) for _, name, score, grade in store.dimensions_since(since, tag=rule.tag)
                if name == rule.dimension]
        count = len(dims)
        if rule.metric == "grade_share":
            value = sum(g in rule.grades for _, g in dims) / count if count else None
        else:
            value = float(np.mean([s for s, _ in dims])) if count else None
    elif rule.metric == "grade_share":
        count = len(done)
        value = sum(r.grade in rule.grades for r in done) / count if count else None
    else:
        key = "score" if rule.metric == "mean_score" else "scaled_score"
        values = [getattr(r, key) for r in done if getattr(r, key) is not None]
        count = len(values)
        if not count:
            value = None
        elif rule.metric == "percentile_scaled_score":
            value = float(np.percentile(values, rule.percentile))
        else:
            value = float(np.mean(values))
    firing = value is not None and count >= rule.min_jobs and OPS[rule.op](value, rule.threshold)
    return Evaluation(value, count, firing)


def describe_metric(rule: AlertRule) -> str:
    what = {
        "grade_share": f"share of videos graded {'/'.join(rule.grades)}",
        "mean_score": "mean score",
        "mean_scaled_score": "mean scaled score",
        "percentile_scaled_score": f"{rule.percentile:g}th percentile of scaled scores",
        "failure_rate": "share of failed jobs",
        "queued_jobs": "jobs waiting",
    }[rule.metric]
    if rule.dimension:
        what += f" ({rule.dimension})"
    if rule.tag:
        what += f" [tag {rule.tag}]"
    return what


def post_json(url: str, payload: dict[str, Any], timeout: float = 5.0, retries: int = 3,
              policy: FetchPolicy | None = None) -> str | None:
    """POST JSON to a webhook with retries; None on success, else the last error.

    The webhook is reached like a URL job's source: only at an address `policy` allows (by
    default public ones), pinned, within `timeout` for the whole exchange, and without
    following redirects (a redirected POST is not ours to re-send). A refused address or a bad
    URL is not retried. Errors name the webhook's host only: its path is often its secret.
    """
    body = json.dumps(payload).encode("utf-8")
    headers = {"Content-Type": "application/json"}
    shown = redact(url, keep_path=False)
    error = None
    for attempt in range(retries):
        try:
            with open_url(url, policy or FetchPolicy(), method="POST", body=body, headers=headers,
                          deadline_s=timeout, idle_s=timeout, follow_redirects=False, shown=shown) as response:
                if 200 <= response.status < 300:
                    return None
                error = f"{shown}: HTTP {response.status} {response.reason}".rstrip()
        except (AddressNotAllowedError, BadURLError) as exc:
            return exc.message
        except OutboundError as exc:
            error = exc.message
        if attempt + 1 < retries:
            time.sleep(min(0.5 * 2**attempt, 4.0))
    return error


def iso(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


class AlertMonitor:
    """Evaluates every rule every `interval_s` seconds in a background thread."""

    def __init__(self, store: JobStore, interval_s: float = 30.0, default_webhook: str | None = None,
                 metrics: Any = None, notify: Callable[[str, dict[str, Any]], str | None] | None = None,
                 fetch_policy: FetchPolicy | None = None):
        """`notify(url, payload)` sends a notification (default: `post_json` under `fetch_policy`,
        which is the service's --allow-fetch; public addresses only when None)."""
        self.store = store
        self.interval_s = interval_s
        self.default_webhook = default_webhook
        self.metrics = metrics
        self.notify = notify or functools.partial(post_json, policy=fetch_policy or FetchPolicy())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="vqscope-alerts", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.evaluate_once()
            except Exception:
                log.warning("alert evaluation failed", exc_info=True)

    def evaluate_once(self) -> list[dict[str, Any]]:
        """Evaluate all rules now; returns the notifications sent (or attempted)."""
        sent = []
        now = self.store.clock()
        for state in self.store.rules():
            try:
                rule = AlertRule.model_validate(state.spec)
            except ValueError:
                log.warning("alert rule %s is not valid any more; skipped", state.name)
                continue
            ev = evaluate(rule, self.store, now)
            self.store.note_rule_value(rule.name, ev.value, ev.count)
            if ev.firing and state.state != "firing" and self.store.switch_rule(rule.name, "ok", "firing"):
                sent.append(self._notify(rule, "firing", ev, now))
            elif not ev.firing and state.state == "firing" and self.store.switch_rule(rule.name, "firing", "ok"):
                sent.append(self._notify(rule, "resolved", ev, now))
        return sent

    def _notify(self, rule: AlertRule, status: str, ev: Evaluation, now: float) -> dict[str, Any]:
        value = "no data" if ev.value is None else f"{ev.value:.3g}"
        window = f"{rule.window_s / 3600:g} h" if rule.window_s >= 3600 else f"{rule.window_s / 60:g} min"
        verb = "is" if status == "firing" else "is back to"
        message = (f"{rule.name} {status}: {describe_metric(rule)} {verb} {value} "
                   f"(alert when {rule.op} {rule.threshold:g}) over the last {window}, {ev.count} videos")
        payload = {
            "source": "vqscope", "rule": rule.name, "status": status, "metric": rule.metric, "op": rule.op,
            "threshold": rule.threshold, "value": ev.value, "jobs": ev.count, "window_s": rule.window_s,
            "tag": rule.tag, "dimension": rule.dimension, "at": iso(now), "message": message,
            "description": rule.description,
        }
        webhook = rule.webhook or self.default_webhook
        event_id = self.store.add_event(rule.name, status, ev.value, message, webhook)
        if webhook is None:
            self.store.event_delivered(event_id, False, "no webhook configured")
            log.warning("%s (no webhook configured)", message)
        else:
            error = self.notify(webhook, payload)
            self.store.event_delivered(event_id, error is None, error)
            if error is not None:
                log.warning("alert %s could not be delivered to %s: %s", rule.name, redact(webhook, keep_path=False),
                            error)
                if self.metrics is not None:
                    self.metrics.webhook_failures.inc()
        return payload
