"""Storage integrity: a database file that is not the one vqscope left is refused at start, the
leftovers of killed uploads are removed, a retried submission makes no second job, and a
database outage is a JSON 503 with Retry-After.

Store-level tests run on SQLite and (where the server binaries are installed) PostgreSQL; the
outage test cuts a loopback TCP proxy between the service and a throwaway PostgreSQL server.
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from service_support import AUTH, TOKEN, Clock, TestClient, fresh_database, free_port, tiny_model_file
from vqscope.cli import main
from vqscope.errors import (
    CorruptDatabaseError,
    DatabaseUnavailableError,
    EmptyDatabaseError,
    ForeignDatabaseError,
    NotADatabaseError,
    SchemaTooNewError,
    StorageError,
)
from vqscope.service import ServiceConfig, create_app
from vqscope.service.idempotency import IdempotencyError, IdempotencyKeyReusedError, request_key
from vqscope.service.leftovers import GRACE_S, clean_leftovers
from vqscope.service.store import JOBS, JobStore, NewJob

HOUR = 3600.0


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def a_jobs_database(path: Path, jobs: int = 300) -> None:
    """A real vqscope database with a few hundred jobs (several pages of the jobs table)."""
    store = JobStore(sqlite_url(path))
    store.submit([NewJob("path", f"/videos/{i}.mp4" + "x" * 200, f"{i}.mp4", tags=("a", "b")) for i in range(jobs)])
    store.close()  # the last connection checkpoints the WAL into the file


def damage_a_jobs_page(path: Path, offset: int, data: bytes) -> int:
    """Overwrite bytes of one leaf page of the jobs table (found with the dbstat table)."""
    with sqlite3.connect(path) as conn:
        (page,), = conn.execute("SELECT pageno FROM dbstat WHERE name = 'vqscope_jobs' AND pagetype = 'leaf' "
                                "ORDER BY pageno LIMIT 1 OFFSET 3").fetchall()
    conn.close()
    with open(path, "r+b") as fh:
        fh.seek(4096 * (page - 1) + offset)
        fh.write(data)
    return page


# -- 1. the integrity check at start ---------------------------------------------------------
def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _png(path: Path) -> None:
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))


def _text(path: Path) -> None:
    path.write_text("jobs:\n  - a.mp4\n")


def _truncated_header(path: Path) -> None:
    path.write_bytes(b"SQLite for")


def _foreign(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
    conn.close()


def _quick_check_fails(path: Path) -> None:
    a_jobs_database(path)
    damage_a_jobs_page(path, 4096 - 300, b"\xff" * 40)  # a cell now extends off the end of its page


def _malformed(path: Path) -> None:
    a_jobs_database(path)
    damage_a_jobs_page(path, 0, b"\x0d" + b"\xff" * 63)  # a page header SQLite cannot even walk


def _newer_schema(path: Path) -> None:
    a_jobs_database(path, jobs=1)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE vqscope_alembic_version SET version_num = '0999'")
    conn.close()


BAD_FILES = [
    (_empty, EmptyDatabaseError, "empty (0 bytes)"),
    (_png, NotADatabaseError, "not a SQLite database (it is a PNG image)"),
    (_text, NotADatabaseError, "not a SQLite database (it is a text file)"),
    (_truncated_header, NotADatabaseError, "a truncated copy"),
    (_foreign, ForeignDatabaseError, "another application (tables: orders, users)"),
    (_quick_check_fails, CorruptDatabaseError, "damaged (quick_check: On tree page"),
    (_malformed, CorruptDatabaseError, "damaged"),
    (_newer_schema, SchemaTooNewError, "'0999'"),
]


@pytest.mark.parametrize("make, error, words", BAD_FILES, ids=[m.__name__.strip("_") for m, _, _ in BAD_FILES])
def test_a_database_file_that_is_not_ours_is_refused_untouched(tmp_path, make, error, words):
    path = tmp_path / "vqscope.db"
    make(path)
    before = path.read_bytes()
    with pytest.raises(error) as info:
        JobStore(sqlite_url(path))
    assert info.value.exit_code == StorageError.exit_code == 29
    assert str(path) in info.value.message and words in info.value.message, info.value.message
    assert "\n" not in info.value.message
    if error is not SchemaTooNewError:  # refused before anything wrote to it (no WAL switch, no migration)
        assert path.read_bytes() == before
        wal = Path(f"{path}-wal")  # a read-only look at a WAL database may leave an empty log, never content
        assert not wal.exists() or wal.stat().st_size == 0


def test_the_damaged_file_used_to_start_and_then_fail_on_reads(tmp_path):
    """Why quick_check at start: the damage is where the jobs are, not where opening looks."""
    path = tmp_path / "vqscope.db"
    _quick_check_fails(path)
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        assert conn.execute("SELECT version_num FROM vqscope_alembic_version").fetchall() == [("0003",)]
        with pytest.raises(sqlite3.DatabaseError, match="malformed"):
            conn.execute("SELECT * FROM vqscope_jobs").fetchall()
    conn.close()


def test_a_new_file_and_an_unmigrated_one_are_fine(tmp_path):
    fresh = tmp_path / "new.db"
    JobStore(sqlite_url(fresh)).close()
    assert fresh.stat().st_size > 0
    # a first start killed before its migration committed leaves SQLite with no tables at all
    bare = tmp_path / "bare.db"
    with sqlite3.connect(bare) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    store = JobStore(sqlite_url(bare))
    assert store.submit([NewJob("path", "/v.mp4", "v.mp4")])[0].state == "queued"
    store.close()
    # reopening our own database keeps its jobs
    store = JobStore(sqlite_url(bare))
    assert store.counts()["queued"] == 1
    store.close()


def test_a_hot_journal_left_by_a_crash_is_rolled_back_not_called_damaged(tmp_path):
    """A rollback-mode file killed mid-write cannot be read read-only; it is recovered instead."""
    live, crashed = tmp_path / "live.db", tmp_path / "vqscope.db"
    a_jobs_database(live, jobs=300)
    conn = sqlite3.connect(live, isolation_level=None)
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.execute("BEGIN")
    conn.execute("PRAGMA cache_size=1")  # spill the change into the file, with the journal beside it
    conn.execute("UPDATE vqscope_jobs SET video = 'half-written', state = 'failed'")
    shutil.copy(live, crashed)  # the state a kill -9 at this moment leaves
    shutil.copy(f"{live}-journal", f"{crashed}-journal")
    conn.execute("ROLLBACK")
    conn.close()
    reader = sqlite3.connect(f"file:{crashed}?mode=ro", uri=True)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):  # a hot journal, as a kill leaves it
        reader.execute("SELECT count(*) FROM vqscope_jobs").fetchall()
    reader.close()
    store = JobStore(sqlite_url(crashed))
    assert store.counts()["queued"] == 300 and store.list(limit=1)[0][0].video != "half-written"
    store.close()
    assert not Path(f"{crashed}-journal").exists()


def test_a_missing_database_with_its_write_ahead_log_left_is_refused(tmp_path):
    path = tmp_path / "vqscope.db"
    Path(f"{path}-wal").write_bytes(b"\x37\x7f\x06\x82" + bytes(60))
    with pytest.raises(StorageError, match="missing but its write-ahead log"):
        JobStore(sqlite_url(path))
    assert not path.exists()


@pytest.mark.parametrize("make, code, words", [
    (_empty, 29, "empty (0 bytes)"), (_png, 29, "not a SQLite database"), (_quick_check_fails, 29, "damaged"),
])
def test_serve_refuses_a_bad_database_in_one_line(tmp_path, capsys, make, code, words):
    data = tmp_path / "data"
    data.mkdir()
    make(data / "vqscope.db")
    assert main(["serve", "--data-dir", str(data), "--token", TOKEN, "--migrate-only"]) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("vqscope: error: ") and str(data / "vqscope.db") in err, err
    assert words in err


def test_an_unreachable_postgresql_is_one_line_with_its_host_and_no_password(tmp_path, capsys):
    port = free_port()  # nothing listens there: refused at once, on the loopback address
    url = f"postgresql://vq:s3cret-pw@127.0.0.1:{port}/jobs"
    with pytest.raises(DatabaseUnavailableError) as info:
        JobStore(url)
    assert f"127.0.0.1:{port}" in info.value.message and "s3cret" not in info.value.message
    assert main(["serve", "--db", url, "--data-dir", str(tmp_path / "d"), "--token", TOKEN, "--migrate-only"]) == 30
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot connect to the database" in err and "s3cret" not in err, err


# -- 2. leftovers of killed uploads -------------------------------------------------------------
def test_partial_and_orphan_uploads_are_removed_and_files_in_use_kept(tmp_path):
    config = ServiceConfig(data_dir=tmp_path / "data", token=TOKEN)
    config.prepare()
    media = config.data_dir / "studies" / "media"
    media.mkdir(parents=True)
    store = JobStore(config.resolved_database_url())
    now = time.time()
    hexid = iter(f"{i:032x}" for i in range(1, 1000))

    def put(folder: Path, name: str, age: float = 2 * GRACE_S) -> Path:
        path = folder / name
        path.write_bytes(b"video bytes")
        os.utime(path, (now - age, now - age))
        return path

    def job(state: str, source: Path | None = None, job_id: str | None = None) -> str:
        job_id = job_id or next(hexid)
        store.submit([NewJob("upload", str(source or "/elsewhere.mp4"), "v.mp4", id=job_id)])
        if state != "queued":
            with store.engine.begin() as conn:
                conn.execute(JOBS.update().where(JOBS.c.id == job_id).values(state=state))
        return job_id

    up, down = config.uploads_dir, config.downloads_dir
    queued, running, done = next(hexid), next(hexid), next(hexid)
    keep = [
        put(up, f"{job('queued', job_id=queued)}.mp4"),  # its job still needs it
        put(up, f"{job('running', job_id=running)}.mkv"),
        put(up, f"{job('done', job_id=done)}.mp4"),  # kept on purpose (--keep-inputs) or shown by a study
        put(up, f"{next(hexid)}.mp4.part", age=60),  # being written right now, maybe by another process
        put(up, f"{next(hexid)}.mp4", age=60),  # just stored; its job row is about to be committed
        put(up, "operator-notes.txt"),  # not a name vqscope makes
        put(down, f"{job('running')}.mp4"),  # a download being scored
        put(media, f"{next(hexid)}.mp4"),  # a study item's video
        put(media, f"{next(hexid)}.mp4.part.mp4", age=60),  # a rating copy being encoded
    ]
    referenced = put(up, f"{next(hexid)}.mp4")  # no job by its name, but a path job names it
    store.submit([NewJob("path", str(referenced), "ref.mp4")])
    keep.append(referenced)
    gone = [
        put(up, f"{next(hexid)}.mp4.part"),  # an upload killed mid-way
        put(up, f"{next(hexid)}.part"),
        put(up, f"{next(hexid)}.webm"),  # stored, then killed before its job was committed
        put(down, f"{job('done')}.mp4"),  # a download whose worker died after finishing
        put(down, f"{next(hexid)}.mp4.part"),
        put(media, f"{next(hexid)}.mp4.part.mp4"),  # a rating copy killed mid-encode
        put(media, f"{next(hexid)}.mov.part"),  # a study upload killed mid-way
    ]
    cleanup = clean_leftovers(store, config)
    assert sorted(cleanup.removed) == sorted(gone)
    assert all(p.exists() for p in keep) and not any(p.exists() for p in gone)
    assert cleanup.kept_young == 3
    assert clean_leftovers(store, config).count == 0  # nothing left to do
    store.close()


# -- 3. idempotency keys --------------------------------------------------------------------------
def key(k: str = "key-1", token: str = TOKEN, body: dict | None = None, endpoint: str = "jobs"):
    return request_key(k, f"Bearer {token}", endpoint, body or {"path": "/v/a.mp4"})


def test_a_key_submits_once(backend):
    clock = Clock()
    store = JobStore(backend, clock=clock)
    first = store.submit_idempotent([NewJob("path", "/v/a.mp4", "a.mp4")], key())
    again = store.submit_idempotent([NewJob("path", "/v/a.mp4", "a.mp4")], key())
    assert not first.replayed and again.replayed
    assert [j.id for j in again.jobs] == [j.id for j in first.jobs]
    assert store.counts()["queued"] == 1
    with pytest.raises(IdempotencyKeyReusedError):  # the same key for another request
        store.submit_idempotent([NewJob("path", "/v/b.mp4", "b.mp4")], key(body={"path": "/v/b.mp4"}))
    with pytest.raises(IdempotencyKeyReusedError):  # ... or another endpoint
        store.replay(key(endpoint="batches"))
    other = store.submit_idempotent([NewJob("path", "/v/a.mp4", "a.mp4")], key(token="another-token"))
    assert not other.replayed  # keys are per token
    batch = store.submit_idempotent([NewJob("path", f"/v/{n}", n) for n in "xyz"], key("b", endpoint="batches"),
                                    batch_id="B1")
    replayed = store.replay(key("b", endpoint="batches"))
    assert [j.id for j in replayed.jobs] == [j.id for j in batch.jobs] and {j.batch_id for j in replayed.jobs} == {"B1"}
    assert store.counts()["queued"] == 5
    clock.now += 24 * HOUR + 1  # keys expire after a day: the key is free again
    assert store.replay(key(body={"path": "/v/b.mp4"})) is None
    fresh = store.submit_idempotent([NewJob("path", "/v/b.mp4", "b.mp4")], key(body={"path": "/v/b.mp4"}))
    assert not fresh.replayed and store.counts()["queued"] == 6
    forever = store.submit_idempotent([NewJob("path", "/v/c.mp4", "c.mp4")], key("f"), ttl_s=0)
    clock.now += 1000 * 24 * HOUR
    assert store.replay(key("f"), ttl_s=0).jobs[0].id == forever.jobs[0].id
    store.close()


def test_racing_retries_with_one_key_make_one_job(backend):
    stores = [JobStore(backend) for _ in range(2)]  # two processes on one database, in effect
    results, barrier = [], threading.Barrier(8)

    def submit(i: int) -> None:
        barrier.wait()
        results.append(stores[i % 2].submit_idempotent([NewJob("path", "/v/a.mp4", "a.mp4")], key("race")))

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 8 and len({r.jobs[0].id for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    with stores[0].engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(JOBS)).scalar_one() == 1
    for s in stores:
        s.close()


def test_a_malformed_key_is_refused():
    for bad in ("", " ", "x" * 256, "caf\u00e9", "two words", "tab\there"):
        with pytest.raises(IdempotencyError):
            key(bad)
    assert key("0f9c2c1e-6d0a-4b9a-9a57-3c1c2d4e5f60").key.startswith("0f9c")


# -- the same over HTTP -----------------------------------------------------------------------------
@pytest.fixture
def service(tmp_path, video_factory):
    media = tmp_path / "media"
    media.mkdir()
    video = media / "v.mp4"
    shutil.copy(video_factory("v.mp4", n=24), video)
    config = ServiceConfig(data_dir=tmp_path / "data", model=tiny_model_file(tmp_path), token=TOKEN,
                           path_roots=(media,), max_upload_bytes=1_000_000)
    with TestClient(create_app(config, background=False), raise_server_exceptions=False) as client:
        yield client, config, video


def total(client) -> int:
    return client.get("/api/jobs", headers=AUTH).json()["total"]


def test_a_retried_submission_returns_the_first_job(service):
    client, _, video = service
    headers = {**AUTH, "Idempotency-Key": "retry-1"}
    first = client.post("/api/jobs", json={"path": str(video), "tags": ["t"]}, headers=headers)
    again = client.post("/api/jobs", json={"tags": ["t"], "path": str(video)}, headers=headers)  # same, reordered
    assert first.status_code == again.status_code == 202, again.text
    assert again.json()["id"] == first.json()["id"] and again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers and total(client) == 1
    other = client.post("/api/jobs", json={"path": str(video), "tags": ["u"]}, headers=headers)
    assert other.status_code == 422 and other.json()["error"] == "idempotency_key_reused", other.text
    bad = client.post("/api/jobs", json={"path": str(video)}, headers={**AUTH, "Idempotency-Key": "x" * 300})
    assert bad.status_code == 422 and bad.json()["error"] == "invalid_idempotency_key"
    assert client.post("/api/jobs", json={"path": str(video)}, headers=AUTH).json()["id"] != first.json()["id"]
    assert total(client) == 2


def test_a_retry_is_answered_even_when_the_first_answer_was_lost(service, monkeypatch):
    """The server commits, then dies before answering (here: the answer fails); the client retries."""
    from vqscope.service import app as app_module

    client, _, video = service
    real = app_module.JobOut.from_job
    calls = []

    def lose_the_first_answer(job, *args, **kwargs):
        calls.append(job.id)
        if len(calls) == 1:
            raise ConnectionResetError("the server died before answering")
        return real(job, *args, **kwargs)

    monkeypatch.setattr(app_module.JobOut, "from_job", lose_the_first_answer)
    headers = {**AUTH, "Idempotency-Key": "lost-answer"}
    assert client.post("/api/jobs", json={"path": str(video)}, headers=headers).status_code == 500
    retry = client.post("/api/jobs", json={"path": str(video)}, headers=headers)
    assert retry.status_code == 202 and retry.json()["id"] == calls[0] and total(client) == 1


def test_a_retried_upload_and_batch_make_no_second_job(service):
    client, config, video = service
    headers = {**AUTH, "Idempotency-Key": "upload-1"}
    ids = []
    for _ in range(2):
        with open(video, "rb") as fh:
            r = client.post("/api/jobs/upload", files={"file": ("clip.mp4", fh)}, data={"tags": "a"}, headers=headers)
        assert r.status_code == 202, r.text
        ids.append(r.json()["id"])
    assert ids[0] == ids[1] and len(list(config.uploads_dir.iterdir())) == 1  # the retry's copy was dropped
    other = client.post("/api/jobs/upload", files={"file": ("other-name.mp4", video.read_bytes())}, data={"tags": "a"},
                        headers=headers)
    assert other.status_code == 422 and other.json()["error"] == "idempotency_key_reused"
    assert len(list(config.uploads_dir.iterdir())) == 1
    body = {"items": [{"path": str(video)}, {"path": str(video), "tags": ["x"]}]}
    batches = [client.post("/api/batches", json=body, headers={**AUTH, "Idempotency-Key": "batch-1"}) for _ in "ab"]
    assert [b.status_code for b in batches] == [202, 202]
    assert batches[0].json()["id"] == batches[1].json()["id"]
    assert [j["id"] for j in batches[0].json()["jobs"]] == [j["id"] for j in batches[1].json()["jobs"]]
    assert total(client) == 3


# -- 4. a database outage ---------------------------------------------------------------------------
@pytest.mark.parametrize("error, status", [
    (OperationalError("SELECT 1", {}, sqlite3.OperationalError("disk I/O error")), 503),
    (PoolTimeoutError("QueuePool limit of size 10 overflow 10 reached"), 503),
    (IntegrityError("INSERT", {"url": "https://u:pw@x/"}, sqlite3.IntegrityError("UNIQUE constraint failed")), 500),
])
def test_database_errors_are_json_with_no_driver_text(service, monkeypatch, error, status):
    client, _, _ = service
    store = client.app.state.service.store

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(store, "list", fail)
    r = client.get("/api/jobs", headers=AUTH)
    assert r.status_code == status and r.headers["content-type"] == "application/json", r.text
    body = r.json()
    assert body["error"] == ("database_unavailable" if status == 503 else "database_error")
    assert "\n" not in body["message"] and "SELECT" not in r.text and "pw" not in r.text
    assert (r.headers.get("Retry-After") == "5") == (status == 503)


class Proxy:
    """A loopback TCP proxy that can be cut: a database outage without stopping the database."""

    def __init__(self, target_port: int):
        self.target = ("127.0.0.1", target_port)
        self.port = free_port()
        self.conns: list[socket.socket] = []
        self.listener: socket.socket | None = None

    def start(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone does not, on Linux)
        except OSError:
            pass
        self.listener.close()
        for s in self.conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        self.conns.clear()


def test_a_postgresql_outage_is_a_503_and_the_service_recovers(pg_server, tmp_path, video_factory):
    url = fresh_database(pg_server)
    pg_port = int(url.rsplit(":", 1)[1].split("/")[0])
    proxy = Proxy(pg_port)
    proxy.start()
    proxied = url.replace(f"@127.0.0.1:{pg_port}/", f"@127.0.0.1:{proxy.port}/").replace("postgres@", "postgres:pw@")
    media = tmp_path / "media"
    media.mkdir()
    shutil.copy(video_factory("v.mp4", n=24), media / "v.mp4")
    config = ServiceConfig(data_dir=tmp_path / "data", model=tiny_model_file(tmp_path), token=TOKEN,
                           database_url=proxied, path_roots=(media,))
    with TestClient(create_app(config, background=False), raise_server_exceptions=False) as client:
        assert client.get("/api/jobs", headers=AUTH).status_code == 200
        proxy.cut()
        for method, path, body in (("GET", "/api/jobs", None), ("POST", "/api/jobs", {"path": str(media / "v.mp4")})):
            r = client.request(method, path, json=body, headers=AUTH)
            assert r.status_code == 503 and r.headers["Retry-After"] == "5", r.text
            assert r.json()["error"] == "database_unavailable" and "pw" not in r.text and "127.0.0.1" not in r.text
        assert client.get("/healthz").status_code == 503
        proxy.start()  # the database is back: so is the service, without a restart
        assert client.get("/api/jobs", headers=AUTH).status_code == 200
        r = client.post("/api/jobs", json={"path": str(media / "v.mp4")}, headers=AUTH)
        assert r.status_code == 202, r.text
    proxy.cut()
