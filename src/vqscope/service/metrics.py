"""Prometheus metrics for `/metrics`.

Three kinds: counters and histograms of what *this process* did (jobs accepted, finished,
timed out, their queue waits, scores and durations, worker processes replaced; they restart at
zero with the process, which Prometheus expects), gauges of this process's workers now (busy,
up; read from the pool at scrape time), and gauges read from the database at scrape time (jobs per state, alert rules firing), which
are the same whichever instance is scraped. Each app has its own registry, so several apps in
one process (tests) do not collide.
"""

from __future__ import annotations

from typing import Any, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily

from .store import JobStore

SCORE_BUCKETS = tuple(float(b) for b in range(10, 101, 10))
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0)
QUEUE_WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0)


class ServiceMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, store: JobStore, model_info: dict[str, str]):
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.submitted = Counter("vqscope_jobs_submitted", "Jobs accepted by this process", ["source"], registry=r)
        self.finished = Counter(
            "vqscope_jobs_finished", "Jobs finished by this process", ["state", "grade"], registry=r
        )
        self.duration = Histogram(
            "vqscope_job_duration_seconds", "Time to score one job (fetch + decode + model)", buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.score = Histogram("vqscope_score", "Predicted quality (0-100) of scored videos", buckets=SCORE_BUCKETS,
                               registry=r)
        self.scaled = Histogram(
            "vqscope_scaled_score", "Scaled score (percentile on the calibration set) of scored videos",
            buckets=SCORE_BUCKETS, registry=r,
        )
        self.queue_wait = Histogram(
            "vqscope_job_queue_wait_seconds", "Time from a job's submission to a worker starting it (first attempt)",
            buckets=QUEUE_WAIT_BUCKETS, registry=r,
        )
        self.timed_out = Counter("vqscope_jobs_timed_out", "Jobs stopped for running past their time limit",
                                 registry=r)
        self.worker_restarts = Counter(
            "vqscope_worker_restarts", "Scoring processes replaced (timed_out: killed at a job's limit; died: "
            "exited on their own)", ["reason"], registry=r,
        )
        self.busy_workers = Gauge("vqscope_workers_busy", "Workers of this process scoring a job now", registry=r)
        self.workers_up = Gauge("vqscope_workers_up", "Scoring processes of this process alive and ready",
                                registry=r)
        self.webhook_failures = Counter(
            "vqscope_alert_webhook_failures", "Alert notifications that could not be delivered", registry=r
        )
        r.register(_StoreCollector(store, model_info))

    def job_finished(self, state: str, grade: str | None, seconds: float, score: float | None,
                     scaled: float | None) -> None:
        self.finished.labels(state=state, grade=grade or "").inc()
        self.duration.observe(seconds)
        if score is not None:
            self.score.observe(score)
        if scaled is not None:
            self.scaled.observe(scaled)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _StoreCollector:
    """Gauges computed from the database when Prometheus scrapes."""

    def __init__(self, store: JobStore, model_info: dict[str, str]):
        self.store = store
        self.model_info = model_info

    def describe(self) -> list[Any]:
        return []  # unknown until collected: keeps registration from querying the database

    def collect(self) -> Iterator[Any]:
        info = InfoMetricFamily("vqscope_model", "The model this service scores with")
        info.add_metric([], self.model_info)
        yield info
        up = GaugeMetricFamily("vqscope_store_up", "1 if the job database answered this scrape")
        try:
            counts = self.store.counts()
            rules = self.store.rules()
        except Exception:
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up
        jobs = GaugeMetricFamily("vqscope_jobs", "Jobs in the database, by state", labels=["state"])
        for state, n in counts.items():
            jobs.add_metric([state], float(n))
        yield jobs
        firing = GaugeMetricFamily("vqscope_alert_firing", "1 while an alert rule fires", labels=["rule"])
        value = GaugeMetricFamily("vqscope_alert_value", "Last evaluated value of an alert rule", labels=["rule"])
        for rule in rules:
            firing.add_metric([rule.name], 1.0 if rule.state == "firing" else 0.0)
            if rule.last_value is not None:
                value.add_metric([rule.name], float(rule.last_value))
        yield firing
        yield value
