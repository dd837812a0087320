"""The job store, its migrations, alert rules and dashboard numbers, on SQLite and PostgreSQL.

Every test runs on a real SQLite file and, where Debian's postgresql server is installed, on a
throwaway PostgreSQL cluster (skipped with a reason otherwise).
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from service_support import Clock, synthetic_result
from vqscope.service.alerts import AlertMonitor, AlertRule, evaluate
from vqscope.service.dashboard import bucket_seconds, build_dashboard
from vqscope.service.migrations import VERSION_TABLE, current, head
from vqscope.service.store import Base, JobFilter, JobStore, NewJob
import vqscope.studies.store  # noqa: F401  (the study tables share the job store's schema)


@pytest.fixture
def store(backend):
    s = JobStore(backend, clock=Clock())
    yield s
    s.close()


def new(name: str, *tags: str) -> NewJob:
    return NewJob("path", f"/videos/{name}", name, tags=tags)


def finish(store: JobStore, name: str, score: float, scaled: float, grade: str, tags=(), dims=None) -> None:
    job = store.submit([new(name, *tags)])[0]
    claimed = store.claim("w", 30)
    assert claimed is not None and claimed.id == job.id
    assert store.complete(claimed, synthetic_result(name, score, scaled, grade, dims))


def test_migrations_build_the_models_schema(store, backend):
    assert current(store.engine) == head()
    with store.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        assert compare_metadata(ctx, Base.metadata) == []
    JobStore(backend).close()  # migrating again is a no-op
    assert current(store.engine) == head()


def test_submit_claim_complete_and_filter(store):
    a, b, c = store.submit([new("a.mp4", "cam1", "night"), new("b.mp4", "cam1"), new("c.mp4")], batch_id="B1")
    assert [j.state for j in (a, b, c)] == ["queued"] * 3 and a.tags == ["cam1", "night"]
    job = store.claim("w1", 30)
    assert job.id == a.id and job.state == "running" and job.attempts == 1  # oldest first
    assert store.complete(job, synthetic_result("a.mp4", 30.0, 12.0, "poor", {"blur": (25.0, "poor")}))
    assert not store.complete(job, synthetic_result("a.mp4", 99.0, 99.0, "excellent"))  # first finisher wins
    job = store.claim("w1", 30)
    assert store.fail(job, "not_a_video", "b.mp4: not a video")
    done = store.get(a.id)
    assert done.state == "done" and done.grade == "poor" and done.result["dimensions"]["blur"]["grade"] == "poor"
    assert store.get(b.id).error_kind == "not_a_video"
    assert store.counts() == {"queued": 1, "running": 0, "done": 1, "failed": 1}

    def ids(**kw):
        jobs, total = store.list(JobFilter(**kw))
        assert total == len(jobs)
        return {j.id for j in jobs}

    assert ids(tags=("cam1",)) == {a.id, b.id}
    assert ids(tags=("cam1", "night")) == {a.id}
    assert ids(grades=("poor",)) == {a.id}
    assert ids(states=("queued",)) == {c.id}
    assert ids(dimension="blur") == {a.id}
    assert ids(dimension="blur", dimension_grades=("good",)) == set()
    assert ids(batch_id="B1") == {a.id, b.id, c.id}
    assert ids(since=store.clock() + 1) == set() and ids(until=store.clock() + 1) == {a.id, b.id, c.id}
    jobs, total = store.list(limit=2)
    assert total == 3 and [j.id for j in jobs] == [c.id, b.id]  # newest first


def test_a_job_is_claimed_by_exactly_one_worker(store):
    submitted = {j.id for j in store.submit([new(f"{i}.mp4") for i in range(24)])}
    claimed: list[str] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        while (job := store.claim(name, 30)) is not None:
            with lock:
                claimed.append(job.id)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(submitted)  # each once, none lost


def test_a_dead_workers_job_is_taken_over_after_its_lease(store):
    clock = store.clock
    job = store.submit([new("a.mp4")], max_attempts=2)[0]
    assert store.claim("dead", lease_s=10).id == job.id
    clock.now += 5
    assert store.claim("alive", 10) is None  # lease still running
    store.renew("dead", [job.seq], 10)  # a live worker keeps its job
    clock.now += 9
    assert store.claim("alive", 10) is None
    clock.now += 2  # the renewals stopped: the lease runs out
    taken = store.claim("alive", 10)
    assert taken.id == job.id and taken.worker == "alive" and taken.attempts == 2
    clock.now += 11  # died again: max_attempts reached, the job fails instead of looping
    assert store.claim("third", 10) is None
    gave_up = store.get(job.id)
    assert gave_up.state == "failed" and gave_up.error_kind == "gave_up"


def test_release_hands_jobs_back_with_their_start_counted(store):
    job = store.submit([new("a.mp4")])[0]
    store.claim("stopping", 30)
    assert store.release("stopping") == 1
    again = store.get(job.id)
    assert again.state == "queued" and again.attempts == 1  # a restart never resets it (test_service_workers.py)


def test_dashboard_numbers(store):
    clock = store.clock
    scaled = [10.0, 35.0, 50.0, 65.0, 90.0]
    for i, s in enumerate(scaled):
        finish(store, f"old{i}.mp4", s, s, "fair", dims={"blur": (s - 5, "fair")})
    clock.now += 7200
    for i, s in enumerate([20.0, 80.0]):
        finish(store, f"new{i}.mp4", s, s, "poor" if s < 40 else "good", tags=("cam2",))
    failed = store.submit([new("broken.mp4")])[0]
    store.fail(store.claim("w", 30), "not_a_video", "x")
    data = build_dashboard(store, 86400, grade_labels=("bad", "poor", "fair", "good", "excellent"))
    assert data["bucket_s"] == bucket_seconds(86400) == 1800 and data["basis"] == "scaled_score"
    points = [p for p in data["trend"] if p["count"] or p["failed"]]
    assert [p["count"] for p in points] == [5, 2] and points[1]["failed"] == 1
    first = points[0]
    assert first["mean"] == pytest.approx(np.mean(scaled))
    assert (first["p10"], first["p50"], first["p90"]) == pytest.approx(tuple(np.percentile(scaled, [10, 50, 90])))
    assert {g["grade"]: g["count"] for g in data["grades"]} == {"bad": 0, "poor": 1, "fair": 5, "good": 1,
                                                                   "excellent": 0}
    assert list(data["dimensions"]) == ["overall", "blur"]
    assert data["dimensions"]["blur"][0]["mean"] == pytest.approx(np.mean(scaled) - 5)
    worst = data["worst"]
    assert [w["video"] for w in worst[:2]] == ["old0.mp4", "new0.mp4"] and len(worst[0]["clips"]) == 3
    assert data["summary"]["done"] == 7 and data["summary"]["failed"] == 1
    assert data["summary"]["low_share"] == pytest.approx(1 / 7, abs=1e-4)
    tagged = build_dashboard(store, 86400, tag="cam2")
    assert tagged["summary"]["done"] == 2 and failed.id not in {w["id"] for w in tagged["worst"]}
    assert build_dashboard(store, 3600)["summary"]["done"] == 2  # the old ones are outside the last hour


def test_alert_fires_once_and_resolves(store):
    clock = store.clock
    sent: list[tuple[str, dict]] = []
    monitor = AlertMonitor(store, default_webhook="http://hooks.invalid/x",
                           notify=lambda url, payload: sent.append((url, payload)))
    rule = AlertRule(name="poor-share", metric="grade_share", grades=["bad", "poor"], op=">", threshold=0.5,
                     window_s=3600, min_jobs=3)
    store.put_rule(rule.name, rule.model_dump(mode="json"))
    for i in range(2):
        finish(store, f"bad{i}.mp4", 10, 5, "bad")
    assert monitor.evaluate_once() == []  # 2 videos < min_jobs: no claim either way
    finish(store, "poor.mp4", 30, 20, "poor")
    finish(store, "good.mp4", 70, 60, "good")
    notes = monitor.evaluate_once()
    assert [n["status"] for n in notes] == ["firing"] and notes[0]["value"] == pytest.approx(0.75)
    assert sent[0][0] == "http://hooks.invalid/x" and sent[0][1]["rule"] == "poor-share"
    assert monitor.evaluate_once() == []  # still firing: no second message
    assert store.rules()[0].state == "firing" and store.rules()[0].last_count == 4
    clock.now += 3601  # the bad hour slides out of the window
    for i in range(3):
        finish(store, f"fine{i}.mp4", 70, 60, "good")
    assert [n["status"] for n in monitor.evaluate_once()] == ["resolved"]
    events = store.events()
    assert [e.status for e in events] == ["resolved", "firing"] and all(e.delivered for e in events)


def test_other_alert_metrics(store):
    clock = store.clock
    for s, g in ((30, "poor"), (50, "fair"), (70, "good")):
        finish(store, f"{s}.mp4", s, s + 1, g, dims={"noise": (s - 20, "bad" if s < 50 else "fair")})
    job = store.submit([new("x.mp4")])[0]
    store.fail(store.claim("w", 30), "corrupt_video", "x")
    now = clock()

    def value(**kw):
        return evaluate(AlertRule(name="r", op=">", threshold=0, **kw), store, now).value

    assert value(metric="mean_scaled_score") == pytest.approx(51)
    assert value(metric="mean_score") == pytest.approx(50)
    assert value(metric="mean_score", dimension="noise") == pytest.approx(30)
    assert value(metric="grade_share", grades=["bad"], dimension="noise") == pytest.approx(1 / 3)
    assert value(metric="percentile_scaled_score", percentile=50) == pytest.approx(51)
    assert value(metric="failure_rate") == pytest.approx(0.25)
    store.submit([new("waiting.mp4")])
    assert value(metric="queued_jobs") == 1
    assert job.id
    with pytest.raises(ValueError):
        AlertRule(name="r", metric="mean_scaled_score", threshold=1, dimension="noise")
