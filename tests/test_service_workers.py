"""No stuck workers: time limits enforced by killing a scoring process, heartbeats that stop at
the limit, attempts that a restart never resets, regular files only, /healthz that says what is
wrong, and the worker metrics.

A "stuck open()" is a regular file another process holds a write lease on (fcntl F_SETLEASE):
the kernel makes every other open() of it wait, as a FIFO or a dead network mount would. A
stuck download is a local server that sends a byte every 0.2 s. Limits are tiny (0.5-1 s) where
a test needs one to fire; the waits are "eventually, within N seconds".
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import http.server
import json
import os
import shutil
import signal
import threading
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from service_support import AUTH, TOKEN, Clock, TestClient, fresh_database, tiny_model_file, wait_until
from vqscope.cli import main
from vqscope.service import ServiceConfig, create_app
from vqscope.service.job_limits import CAP_S, FLOOR_S, JobLimits
from vqscope.service.store import JobStore, NewJob
from vqscope.service.worker import Slot, WorkerPool


# -- fixtures and helpers -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def media(tmp_path_factory, video_factory):
    folder = tmp_path_factory.mktemp("worker-media")
    shutil.copy(video_factory("w0.mp4", n=48, speed=3, seed=4), folder / "w0.mp4")
    return folder


def make_config(root, media, **overrides) -> ServiceConfig:
    settings = dict(data_dir=root / "data", model=tiny_model_file(root), token=TOKEN, workers=1, poll_s=0.05,
                    lease_s=1.0, path_roots=(media,), allow_fetch=("127.0.0.1/32",))
    return ServiceConfig(**{**settings, **overrides})


@pytest.fixture(scope="module")
def client(tmp_path_factory, media):
    with TestClient(create_app(make_config(tmp_path_factory.mktemp("workers"), media))) as c:
        yield c


@pytest.fixture
def pool(client):
    """The module app's pool; whatever limits a test sets are put back afterwards."""
    pool = client.app.state.service.pool
    limits = pool.limits
    yield pool
    pool.limits = limits


def submit(client, **body) -> dict:
    r = client.post("/api/jobs", json=body, headers=AUTH)
    assert r.status_code == 202, r.text
    return r.json()


def job(client, job_id: str) -> dict:
    return client.get(f"/api/jobs/{job_id}").json()


def finished(client, job_id: str, timeout: float = 30) -> dict:
    return wait_until(lambda: (j := job(client, job_id))["state"] in ("done", "failed") and j, timeout, 0.05,
                      f"job {job_id} to finish")


def health(client) -> tuple[int, dict]:
    r = client.get("/healthz")
    return r.status_code, r.json()


def worker_pid(client) -> int:
    return health(client)[1]["worker_states"][0]["pid"]


def sample(client, name: str, **labels: str) -> float:
    """One value of /metrics (0 when absent)."""
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return 0.0


def healthy(client) -> bool:
    status, body = health(client)
    return status == 200 and body["status"] == "ok" and body["problems"] == []


@contextlib.contextmanager
def trickling_server():
    """A server that promises a big video and sends it a byte every 0.2 s, for as long as it is up."""
    closing = threading.Event()

    class Trickle(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server naming)
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", str(10**6))
            self.end_headers()
            try:
                while not closing.is_set():
                    self.wfile.write(b"\0")
                    self.wfile.flush()
                    closing.wait(0.2)
            except OSError:  # the worker that read this was killed
                pass

        def log_message(self, *args) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/slow.mp4"
    finally:
        closing.set()
        httpd.shutdown()
        httpd.server_close()


@contextlib.contextmanager
def open_blocks(path):
    """While this runs, another process's open() of `path` (a regular file) blocks: we hold a
    write lease, which makes the kernel hold every other open() until we give it up (or up to
    /proc/sys/fs/lease-break-time, 45 s by default)."""
    if not hasattr(fcntl, "F_SETLEASE"):
        pytest.skip("file leases (F_SETLEASE) are Linux only")
    previous = signal.signal(signal.SIGIO, signal.SIG_IGN)  # the kernel's "give the lease up" notice
    fd = os.open(path, os.O_RDWR)
    try:
        try:
            fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_WRLCK)
        except OSError as exc:
            pytest.skip(f"cannot take a file lease here ({exc.strerror})")
        yield
    finally:
        os.close(fd)
        signal.signal(signal.SIGIO, previous)


def scores_a_video(client, media) -> None:
    done = finished(client, submit(client, path=str(media / "w0.mp4"))["id"])
    assert done["state"] == "done", done["error"]


# -- time limits ------------------------------------------------------------------------------------
def test_a_stuck_open_times_out_and_a_new_worker_scores_the_next_job(client, pool, media):
    stuck = media / "stuck.mp4"
    shutil.copy(media / "w0.mp4", stuck)
    pid = worker_pid(client)
    timed_out, restarts = sample(client, "vqscope_jobs_timed_out_total"), sample(
        client, "vqscope_worker_restarts_total", reason="timed_out")
    pool.limits = JobLimits(fixed_s=1.0)
    with open_blocks(stuck):
        failed = finished(client, submit(client, path=str(stuck))["id"])
    assert failed["state"] == "failed" and failed["error"]["kind"] == "timed_out", failed
    message = failed["error"]["message"]
    assert "\n" not in message and "time limit of 1 s set by --job-timeout" in message and str(stuck) not in message
    assert failed["attempts"] == 1  # failed, not retried
    assert sample(client, "vqscope_jobs_timed_out_total") == timed_out + 1
    assert sample(client, "vqscope_worker_restarts_total", reason="timed_out") == restarts + 1
    assert sample(client, "vqscope_jobs_finished_total", state="failed", grade="") >= 1

    pool.limits = JobLimits()  # the automatic limit again: the next job is a normal one
    scores_a_video(client, media)
    assert worker_pid(client) != pid  # a new process scored it
    wait_until(lambda: healthy(client), 10, what="/healthz to say ok")


def test_a_url_that_trickles_times_out_and_leaves_no_download(client, pool, media):
    pool.limits = JobLimits(fixed_s=1.0)
    with trickling_server() as url:
        failed = finished(client, submit(client, url=url)["id"])
    assert failed["state"] == "failed" and failed["error"]["kind"] == "timed_out", failed
    downloads = client.app.state.service.config.downloads_dir
    assert not list(downloads.glob(f"{failed['id']}*"))  # the killed process's partial file is gone
    pool.limits = JobLimits()
    scores_a_video(client, media)


def test_a_job_past_its_limit_that_will_not_die_is_reported_and_its_lease_runs_out(client, pool, monkeypatch):
    store = client.app.state.service.store
    monkeypatch.setattr(pool, "_signal_kill", lambda process: None)  # as if stuck in uninterruptible sleep
    pool.limits = JobLimits(fixed_s=0.5)
    with trickling_server() as url:
        stuck = submit(client, url=url)
        _, body = wait_until(lambda: (h := health(client))[0] == 503 and any(
            "past its time limit" in p for p in h[1]["problems"]) and h, 30, 0.05, "/healthz to report the stuck job")
        assert body["status"] == "degraded" and body["worker_states"][0]["job"] == stuck["id"]
        assert sample(client, "vqscope_workers_busy") == 1
        # the heartbeat no longer renews it: the lease (1 s) runs out while it still runs here
        row = wait_until(lambda: (j := store.get(stuck["id"])).lease_expires_at < store.clock() and j, 30, 0.05,
                         "the lease to run out")
        assert row.state == "running"
        monkeypatch.undo()  # SIGKILL works again
        failed = finished(client, stuck["id"])
    assert failed["error"]["kind"] == "timed_out"
    wait_until(lambda: healthy(client), 20, what="/healthz to say ok again")
    assert sample(client, "vqscope_workers_busy") == 0


def test_the_automatic_limit_follows_the_videos_duration(client, pool, media):
    rule = JobLimits()
    assert rule.at_start("url", 0.0).seconds == rule.fetch_s
    assert rule.at_start("path", 0.0).seconds == FLOOR_S  # until the duration is known
    assert rule.for_duration(2.0, 0.0).seconds == FLOOR_S
    assert rule.for_duration(300.0, 0.0).seconds == 3000.0  # 10 x a 5-minute video
    assert rule.for_duration(7200.0, 0.0).seconds == CAP_S
    assert rule.for_duration(None, 0.0).seconds == FLOOR_S
    assert JobLimits(fixed_s=5).after(("duration", 300.0), JobLimits(fixed_s=5).at_start("url", 0.0), 9.0).seconds == 5

    seen = []

    class Recording(JobLimits):
        def after(self, message, current, now):
            allowance = super().after(message, current, now)
            seen.append((message[0], allowance.seconds, allowance.why))
            return allowance

    pool.limits = Recording()
    scores_a_video(client, media)
    assert [s[0] for s in seen] == ["opening", "duration"]
    assert seen[-1][1] == FLOOR_S and seen[-1][2].startswith("to score a 2")  # 48 frames at 24 fps: ~2 s


def test_job_timeout_flag(tmp_path):
    data = str(tmp_path / "d")
    assert main(["serve", "--data-dir", data, "--job-timeout", "0", "--migrate-only"]) == 2
    assert main(["serve", "--data-dir", data, "--job-timeout", "90", "--migrate-only"]) == 0


# -- regular files only -------------------------------------------------------------------------------
def test_a_fifo_is_refused_at_submission_and_never_opened_by_a_worker(client, media):
    fifo = media / "pipe.mp4"
    os.mkfifo(fifo)
    r = client.post("/api/jobs", json={"path": str(fifo)}, headers=AUTH)
    assert r.status_code == 422 and r.json()["error"] == "not_a_regular_file", r.text
    # a job that names one anyway (the file became a FIFO after submission): refused by its stat
    pid = worker_pid(client)
    service = client.app.state.service
    queued = service.store.submit([NewJob("path", str(fifo), "pipe.mp4")])[0]
    service.pool.wake()
    failed = finished(client, queued.id)
    assert failed["error"]["kind"] == "not_a_regular_file" and "\n" not in failed["error"]["message"], failed
    with pytest.raises(OSError) as raised:  # no process has the FIFO open for reading, not even blocked in open()
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    assert raised.value.errno == errno.ENXIO
    assert worker_pid(client) == pid  # refused, not timed out: the same process goes on


# -- health -----------------------------------------------------------------------------------------------
def test_healthz_reports_a_killed_worker_process_until_a_new_one_is_ready(client, pool, media, monkeypatch):
    assert healthy(client)
    pid = worker_pid(client)
    died = sample(client, "vqscope_worker_restarts_total", reason="died")
    gate = threading.Event()
    launch = pool._launch

    def gated_launch(slot):  # hold the replacement back until the test has seen the gap
        gate.wait(30)
        launch(slot)

    monkeypatch.setattr(pool, "_launch", gated_launch)
    os.kill(pid, signal.SIGKILL)
    _, body = wait_until(lambda: (h := health(client))[0] == 503 and h, 30, 0.05, "/healthz to say degraded")
    assert body["status"] == "degraded"
    assert any(p.startswith("worker 0: its scoring process") and "not running" in p for p in body["problems"]), body
    assert sample(client, "vqscope_workers_up") == 0
    gate.set()
    wait_until(lambda: healthy(client), 30, what="/healthz to say ok again")
    assert worker_pid(client) != pid and sample(client, "vqscope_workers_up") == 1
    assert sample(client, "vqscope_worker_restarts_total", reason="died") == died + 1
    scores_a_video(client, media)


def test_a_job_that_kills_its_worker_every_time_gives_up(client, media):
    died = sample(client, "vqscope_worker_restarts_total", reason="died")
    with trickling_server() as url:
        victim = submit(client, url=url)
        for attempt in (1, 2, 3):  # max_attempts is 3
            def busy_with_it(attempt=attempt):
                state = health(client)[1]["worker_states"][0]
                return (state["state"] == "busy" and state["job"] == victim["id"]
                        and job(client, victim["id"])["attempts"] == attempt and state["pid"])

            os.kill(wait_until(busy_with_it, 30, 0.05, f"attempt {attempt}"), signal.SIGKILL)
        final = finished(client, victim["id"])
    assert final["state"] == "failed" and final["error"]["kind"] == "gave_up" and final["attempts"] == 3, final
    assert sample(client, "vqscope_worker_restarts_total", reason="died") == died + 3
    scores_a_video(client, media)


class _Boom(BaseException):
    """Ends the heartbeat thread (it survives ordinary exceptions, by design)."""


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_healthz_reports_a_dead_heartbeat(tmp_path, media, monkeypatch):
    with TestClient(create_app(make_config(tmp_path, media))) as c:
        assert healthy(c)

        def boom():
            raise _Boom()

        monkeypatch.setattr(c.app.state.service.pool, "renew_leases", boom)
        _, body = wait_until(lambda: (h := health(c))[0] == 503 and h, 30, 0.05, "/healthz to say degraded")
        assert "the lease heartbeat thread is not running" in body["problems"]


# -- leases and attempts --------------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'jobs.db'}" if request.param == "sqlite" else fresh_database(
        request.getfixturevalue("pg_server"))
    s = JobStore(url, clock=Clock())
    yield s
    s.close()


def new(name: str) -> NewJob:
    return NewJob("path", f"/videos/{name}", name)


def test_heartbeats_renew_only_jobs_within_their_limit(tmp_path):
    from vqscope.service.job_limits import Allowance

    store = JobStore(f"sqlite:///{tmp_path / 'jobs.db'}", clock=Clock())
    pool = WorkerPool(store, ServiceConfig(data_dir=tmp_path / "data", model=tiny_model_file(tmp_path), token=TOKEN,
                                           workers=2, lease_s=10))
    store.submit([new("expired.mp4"), new("fine.mp4")])
    expired, fine = store.claim(pool.worker_id, 10), store.claim(pool.worker_id, 10)
    now = time.monotonic()
    pool.slots = [Slot(0, job=expired, allowance=Allowance(1.0, now - 5, "(test)")),
                  Slot(1, job=fine, allowance=Allowance(60.0, now, "(test)"))]
    store.clock.now += 5
    assert pool.renew_leases() == 1
    assert store.get(expired.id).lease_expires_at == expired.lease_expires_at  # not renewed
    assert store.get(fine.id).lease_expires_at == store.clock() + 10
    store.close()


def test_a_restart_never_resets_attempts(store):
    job = store.submit([new("hangs.mp4")], max_attempts=2)[0]
    assert store.claim("first", 30).attempts == 1
    assert store.release("first") == 1  # SIGTERM: handed back ...
    again = store.get(job.id)
    assert again.state == "queued" and again.attempts == 1  # ... with its start counted
    assert store.claim("second", 30).attempts == 2
    store.release("second")
    assert store.claim("third", 30) is None  # 2 starts, 2 allowed: no third
    gave_up = store.get(job.id)
    assert gave_up.state == "failed" and gave_up.error_kind == "gave_up" and "started 2 times" in gave_up.error_message


def test_clean_shutdowns_give_a_bounded_number_of_spare_starts(store):
    job = store.submit([new("slow.mp4")], max_attempts=2)[0]
    starts = 0
    while (claimed := store.claim("w", 30)) is not None:
        starts += 1
        store.release("w", spare=[claimed.seq], spare_up_to=4)  # stopped within its limit, every time
        assert starts < 10, "released forever"
    final = store.get(job.id)
    assert starts == 4 and final.attempts == 4 and final.max_attempts == 4 and final.error_kind == "gave_up"


def test_a_dead_workers_job_goes_back_counted_and_alone(store):
    a, b = store.submit([new("a.mp4"), new("b.mp4")], max_attempts=3)
    ca, _ = store.claim("w", 30), store.claim("w", 30)
    assert store.release("w", [ca.seq]) == 1  # only the job whose process died
    assert (store.get(a.id).state, store.get(a.id).attempts, store.get(a.id).max_attempts) == ("queued", 1, 3)
    assert store.get(b.id).state == "running"


def test_a_late_failure_never_fails_the_attempt_that_took_over(store):
    job = store.submit([new("a.mp4")])[0]
    first = store.claim("slow", 10)
    store.clock.now += 11  # its lease ran out (its heartbeat stopped at the limit) ...
    second = store.claim("fresh", 10)  # ... and another worker took the job over
    assert second.attempts == 2
    assert not store.fail(first, "timed_out", "late")  # the first attempt's timeout arrives late
    assert store.get(job.id).state == "running"
    assert store.fail(second, "not_a_video", "x")
    assert store.get(job.id).error_kind == "not_a_video"


def test_stopping_hands_a_running_job_back_with_its_start_counted(tmp_path, media):
    with trickling_server() as url, TestClient(create_app(make_config(tmp_path, media))) as c:
        queued = submit(c, url=url)
        wait_until(lambda: job(c, queued["id"])["state"] == "running", 30, 0.05, "the job to start")
        c.app.state.service.pool.stop(timeout=0.2)  # what SIGTERM does, with a short grace period
        back = c.app.state.service.store.get(queued["id"])
    assert back.state == "queued" and back.attempts == 1  # counted: not reset to 0
    assert back.max_attempts == 4  # stopped within its limit: one spare start (3 + 1)


# -- results ------------------------------------------------------------------------------------------------
def test_results_equal_vqscope_score_and_queue_wait_is_measured(client, media, capsys):
    waits = sample(client, "vqscope_job_queue_wait_seconds_count")
    done = finished(client, submit(client, path=str(media / "w0.mp4"))["id"])
    assert done["state"] == "done"
    model = client.app.state.service.config.model
    capsys.readouterr()
    assert main(["score", str(media / "w0.mp4"), "--model", model, "--json", "--no-progress"]) == 0
    cli = json.loads(capsys.readouterr().out)
    service = client.get(f"/api/jobs/{done['id']}/result").json()
    for d in (cli, service):
        d.pop("video")
        d.pop("elapsed_s")
    assert service == cli
    assert sample(client, "vqscope_job_queue_wait_seconds_count") == waits + 1
