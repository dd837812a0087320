"""A kill -9 during a study loses no submitted rating.

The real service runs as its own process; several raters' clients answer as fast as they
can, each in its own thread; the server is killed with SIGKILL while they do, and started
again on the same database. Every answer that got its 201 must be stored, once, with the
score that was sent; the only other answer the store may hold is the one a client had in
flight when the server died (its reply lost, not the rating); and each rater resumes at
their first unanswered task. SQLite in the data folder, and PostgreSQL where a server can be
started (skipped with the reason otherwise).
"""

from __future__ import annotations

import os
import signal
import threading
from dataclasses import dataclass, field

import httpx
from sqlalchemy import func, select

from service_support import (AUTH, free_port, fresh_database, postgres_server, start_server, stop_server, tiny_model_file,
                             wait_until)
from vqscope.service.store import JobStore
from vqscope.studies.store import RATERS, RATINGS, TASKS, StudyStore

N_VIDEOS = 24
N_RATERS = 6
KILL_AFTER = 40  # saved answers (of about 160) before the kill


def start(data_dir, model, port, db=None):
    return start_server(data_dir, model, port, "--workers", "1", "--any-path", *(["--db", db] if db else []))


def score_for(rater: int, position: int) -> int:
    """The answer a client gives: known in advance, so the store can be checked against it."""
    return (7 * rater + 3 * position) % 5 + 1


@dataclass
class Client:
    """One rater answering every task as fast as the server lets them."""

    number: int
    token: str
    base: str
    saved: list[int] = field(default_factory=list)  # positions answered with a 201
    in_flight: int | None = None  # the position being sent when the connection died
    refused: list[tuple[int, int, str]] = field(default_factory=list)  # any other reply: a bug
    finished: bool = False

    def run(self, stop_after: int | None = None) -> None:
        with httpx.Client(base_url=self.base, timeout=20) as http:
            try:
                task = http.get(f"/api/rate/{self.token}").json()["task"]
            except httpx.HTTPError:
                return
            while task is not None:
                if stop_after is not None and len(self.saved) >= stop_after:
                    return
                position = task["position"]
                self.in_flight = position
                try:
                    r = http.post(f"/api/rate/{self.token}/tasks/{position}",
                                  json={"score": score_for(self.number, position), "watched_s": 0.5})
                except httpx.HTTPError:
                    return  # the server died: this answer may or may not be stored
                self.in_flight = None
                if r.status_code != 201:
                    self.refused.append((position, r.status_code, r.text[:200]))
                    return
                self.saved.append(position)
                task = r.json()["task"]
            self.finished = True


def stored(url: str, study_id: str) -> tuple[dict[tuple[str, int], int], int, int]:
    """What the database holds, read directly: {(rater id, position): score}, the number of
    rating rows, and the largest number of ratings any one task has."""
    store = JobStore(url, migrate=False)
    try:
        studies = StudyStore(store.engine)
        seq = studies.get(study_id).seq
        with store.engine.connect() as conn:
            rows = conn.execute(
                select(RATERS.c.id, TASKS.c.position, RATINGS.c.score)
                .select_from(RATINGS.join(TASKS, TASKS.c.seq == RATINGS.c.task_seq)
                             .join(RATERS, RATERS.c.seq == RATINGS.c.rater_seq))
                .where(RATINGS.c.study_seq == seq)).all()
            mine = select(func.count()).select_from(RATINGS).where(RATINGS.c.study_seq == seq)
            count = conn.execute(mine).scalar_one()
            per_task = conn.execute(mine.group_by(RATINGS.c.task_seq)).scalars().all()
    finally:
        store.close()
    return {(r.id, r.position): r.score for r in rows}, int(count), max(per_task, default=0)


def kill_during_study(tmp_path, video_factory, db: str | None) -> None:
    media = tmp_path / "media"
    media.mkdir()
    clip = video_factory("restart.mp4", n=12)
    for i in range(N_VIDEOS + 1):  # the same tiny clip under many names: each a study item
        os.link(clip, media / f"v{i:02d}.mp4")
    model = tiny_model_file(tmp_path)
    data = tmp_path / "data"
    url = db or f"sqlite:///{data / 'vqscope.db'}"
    port = free_port()
    proc, base = start(data, model, port, db)
    try:
        r = httpx.post(f"{base}/api/studies", headers=AUTH, timeout=60, json={
            "name": "kill -9", "paths": [str(media / f"v{i:02d}.mp4") for i in range(N_VIDEOS)],
            "anchors": [{"path": str(media / f"v{N_VIDEOS:02d}.mp4"), "label": "fair"}], "repeats": 2})
        assert r.status_code == 201, r.text
        study_id = r.json()["id"]
        r = httpx.post(f"{base}/api/studies/{study_id}/raters", json={"count": N_RATERS}, headers=AUTH, timeout=30)
        assert r.status_code == 201, r.text
        raters = r.json()["raters"]
        total = raters[0]["total"]  # anchor + videos + repeats
        assert total == 1 + N_VIDEOS + 2
        clients = [Client(k, rater["token"], base) for k, rater in enumerate(raters)]
        threads = [threading.Thread(target=c.run, daemon=True) for c in clients]
        for t in threads:
            t.start()
        wait_until(lambda: sum(len(c.saved) for c in clients) >= KILL_AFTER, 60, 0.001, "answers to come in")
        stop_server(proc, signal.SIGKILL)
        for t in threads:
            t.join(30)
        assert not any(t.is_alive() for t in threads)
        assert [c.refused for c in clients] == [[]] * N_RATERS  # before the kill, every answer was taken
        assert not any(c.finished for c in clients)  # the kill came mid-study for everyone

        # what the dead server left: every 201 stored, with its score; nothing else but what was in flight
        held, rows, most = stored(url, study_id)
        ids = {c.number: rater["id"] for c, rater in zip(clients, raters)}
        acknowledged = {(ids[c.number], p) for c in clients for p in c.saved}
        maybe = {(ids[c.number], c.in_flight) for c in clients if c.in_flight is not None}
        assert maybe  # the kill cut requests in flight
        assert acknowledged <= set(held)
        assert set(held) <= acknowledged | maybe
        assert rows == len(held) and most == 1  # no task rated twice, no duplicate rows
        assert all(score == score_for(next(n for n, i in ids.items() if i == rater), position)
                   for (rater, position), score in held.items())
        for c in clients:  # answers are taken in order: each rater's are a prefix of their list
            mine = sorted(p for (rater, p) in held if rater == ids[c.number])
            assert mine == list(range(len(mine)))

        # start again on the same database: every rater goes on at their first unanswered task
        proc, base = start(data, model, port, db)
        for c in clients:
            state = httpx.get(f"{base}/api/rate/{c.token}", timeout=10).json()
            done = sum(1 for (rater, _) in held if rater == ids[c.number])
            assert state["progress"]["done"] == done
            assert state["task"]["position"] == done
            if c.in_flight is not None and (ids[c.number], c.in_flight) in held:  # the lost reply, sent again
                again = httpx.post(f"{base}/api/rate/{c.token}/tasks/{c.in_flight}", json={"score": 3}, timeout=10)
                assert again.status_code == 409 and again.json()["error"] == "duplicate_rating"
        for c in clients:  # and they can finish the study
            c.base, c.saved, c.in_flight = base, [], None
        threads = [threading.Thread(target=c.run, daemon=True) for c in clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert all(c.finished and not c.refused for c in clients), [c.refused for c in clients]
        final, rows, most = stored(url, study_id)
        assert rows == len(final) == N_RATERS * total and most == 1
        assert {k: v for k, v in final.items() if k in held} == held  # nothing stored before was changed
        assert all(s["done"] == total for s in httpx.get(f"{base}/api/studies/{study_id}", headers=AUTH,
                                                            timeout=10).json()["rater_list"])
    finally:
        stop_server(proc)


def test_kill_9_loses_no_rating_sqlite(tmp_path, video_factory):
    kill_during_study(tmp_path, video_factory, None)


def test_kill_9_loses_no_rating_postgresql(tmp_path, video_factory):
    with postgres_server() as server:
        kill_during_study(tmp_path, video_factory, fresh_database(server))
