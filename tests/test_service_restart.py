"""An accepted job is never lost: kill -9 the server mid-work, start it again, every job finishes."""

from __future__ import annotations

import shutil
import signal

import httpx

from service_support import AUTH, free_port, start_server, stop_server, tiny_model_file, wait_until
from vqscope.service.store import JobStore

N_PATH_JOBS = 10


def start(data_dir, model, port):
    return start_server(data_dir, model, port, "--workers", "1", "--lease-seconds", "1.5", "--poll-seconds", "0.1",
                        "--any-path")


def test_kill_9_and_restart_loses_no_job(tmp_path, video_factory):
    media = tmp_path / "media"
    media.mkdir()
    for i in range(3):
        shutil.copy(video_factory(f"r{i}.mp4", n=96, seed=i, speed=2 + i), media / f"r{i}.mp4")
    model = tiny_model_file(tmp_path)
    data = tmp_path / "data"
    port = free_port()
    proc, base = start(data, model, port)
    try:
        items = [{"path": str(media / f"r{i % 3}.mp4"), "tags": [f"n{i}"]} for i in range(N_PATH_JOBS)]
        r = httpx.post(f"{base}/api/batches", json={"items": items}, headers=AUTH, timeout=30)
        assert r.status_code == 202, r.text
        ids = [j["id"] for j in r.json()["jobs"]]
        with open(media / "r1.mp4", "rb") as fh:
            r = httpx.post(f"{base}/api/jobs/upload", files={"file": ("up.mp4", fh)}, headers=AUTH, timeout=30)
        assert r.status_code == 202, r.text
        ids.append(r.json()["id"])
        wait_until(lambda: httpx.get(f"{base}/api/jobs", params={"state": "running"}).json()["total"] > 0, 30, 0.01,
                   "a job to start")
        stop_server(proc, signal.SIGKILL)
        # what the dead server left behind: unfinished work, one job held under a lease
        store = JobStore(f"sqlite:///{data / 'vqscope.db'}", migrate=False)
        at_kill = {j.id: j.state for j in store.list(limit=100)[0]}
        store.close()
        assert set(at_kill) == set(ids)
        assert sum(s in ("queued", "running") for s in at_kill.values()) >= 2, at_kill
        running_at_kill = [i for i, s in at_kill.items() if s == "running"]
        assert list((data / "uploads").iterdir()) or at_kill[ids[-1]] == "done"  # the upload is on disk

        proc, base = start(data, model, port)

        def all_finished():
            jobs = httpx.get(f"{base}/api/jobs", params={"limit": 100}).json()["items"]
            return all(j["state"] in ("done", "failed") for j in jobs) and jobs

        jobs = {j["id"]: j for j in wait_until(all_finished, 90, 0.2, "every job to finish")}
        assert set(jobs) == set(ids)
        assert all(j["state"] == "done" for j in jobs.values()), [j["error"] for j in jobs.values()]
        for job_id in running_at_kill:
            assert jobs[job_id]["attempts"] == 2  # taken over after the lease ran out
        assert jobs[ids[-1]]["video"] == "up.mp4"
        assert list((data / "uploads").iterdir()) == []
    finally:
        stop_server(proc)
