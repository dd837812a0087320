"""The service's front door: tokens and roles checked before a body is read, body limits per
route, bounded long polls that hold no thread, what responses and logs reveal, input bounds,
and HTTP request metrics. No workers run here (background=False): jobs are finished through
the store where a test needs a result."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import socket

import anyio
import httpx
import pytest

from service_support import LiveServer, TestClient, synthetic_result, tiny_model_file, wait_until
from vqscope.errors import ConfigError
from vqscope.service import ServiceConfig, create_app
from vqscope.service.auth import AccessPolicy, Role, route_role, serve_open_reads
from vqscope.service.limits import BodyLimits
from vqscope.service.redact import redact_text, redact_url, redact_webhook
from vqscope.service.store import NewJob

ADMIN, SUBMIT, READ = "admin-token", "submit-token", "read-token"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def media(tmp_path_factory, video_factory):
    folder = tmp_path_factory.mktemp("auth-media")
    shutil.copy(video_factory("a.mp4", n=24), folder / "a.mp4")
    return folder


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return tiny_model_file(tmp_path_factory.mktemp("auth-model"))


def make_app(tmp_path, model_file, media, **extra):
    config = ServiceConfig(data_dir=tmp_path / "data", model=model_file, token=ADMIN, path_roots=(media,),
                           **extra)
    return create_app(config, background=False)


@pytest.fixture(scope="module")
def private_app(tmp_path_factory, model_file, media):
    """Reads need a token: admin, submit and read tokens configured."""
    return make_app(tmp_path_factory.mktemp("private"), model_file, media, read_token=READ, submit_token=SUBMIT)


@pytest.fixture(scope="module")
def private(private_app):
    with TestClient(private_app) as c:
        yield c


def finish(store, job, result=None, error=None):
    """Finish a submitted job as a worker would (jobs queued before it are failed out of the way)."""
    while (claimed := store.claim("test-worker", 30)) is not None and claimed.id != job.id:
        store.fail(claimed, "skipped", "not part of this test")
    assert claimed is not None
    if error is not None:
        assert store.fail(claimed, "not_a_video", error)
    else:
        assert store.complete(claimed, result or synthetic_result(claimed.video, 42.0, 40.0, "fair"))


# -- 1. the token is checked before any body is read ------------------------------------------------
async def asgi_call(app, method, path, headers=(), chunks=0, chunk=1 << 20, declared=True):
    """One request straight into the ASGI app; returns (status, headers, body, receive calls)."""
    reads = 0
    body_headers = [(b"content-length", str(chunks * chunk).encode())] if declared else \
        [(b"transfer-encoding", b"chunked")]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
             "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
             "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                         *[(k.lower().encode(), v.encode()) for k, v in headers], *body_headers],
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000), "state": {}}

    async def receive():
        nonlocal reads
        reads += 1
        if reads <= chunks:
            return {"type": "http.request", "body": b"[" * chunk, "more_body": reads < chunks}
        return {"type": "http.disconnect"}

    sent = []

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), body, reads


@pytest.mark.parametrize("method,path", [("POST", "/api/batches"), ("POST", "/api/jobs"),
                                         ("POST", "/api/jobs/upload"), ("POST", "/api/studies"),
                                         ("PUT", "/api/alert-rules/x"), ("POST", "/api/nowhere")])
def test_a_request_without_a_valid_token_is_refused_before_its_body_is_read(private_app, method, path):
    async def run():
        for headers, declared in [((), True), ((), False), ((("Authorization", "Bearer wrong"),), True),
                                  ((("Authorization", "Basic YWRtaW46eA=="),), False)]:
            status, out_headers, body, reads = await asgi_call(private_app, method, path, headers, chunks=100,
                                                               declared=declared)
            assert (status, reads) == (401, 0), (headers, declared, body)
            assert json.loads(body)["error"] == "unauthorized"
            assert out_headers[b"www-authenticate"] == b"Bearer" and out_headers[b"connection"] == b"close"
    asyncio.run(run())


def test_a_token_whose_role_is_too_low_is_refused_before_the_body_too(private_app):
    async def run():
        for token, method, path in [(READ, "POST", "/api/batches"), (READ, "POST", "/api/jobs/upload"),
                                    (SUBMIT, "PUT", "/api/alert-rules/x"), (SUBMIT, "POST", "/api/studies")]:
            status, _h, body, reads = await asgi_call(private_app, method, path, [("Authorization", f"Bearer {token}")],
                                                      chunks=100)
            assert (status, reads) == (403, 0), body
            assert json.loads(body)["error"] == "forbidden"
    asyncio.run(run())


def test_over_the_json_limit_is_413_before_parsing(private_app):
    async def run():
        admin = [("Authorization", f"Bearer {ADMIN}")]
        # declared: refused before a byte is read (8 MB for batches, 64 KB for one job)
        status, _h, body, reads = await asgi_call(private_app, "POST", "/api/batches", admin, chunks=9)
        assert (status, reads) == (413, 0)
        message = json.loads(body)["message"]
        assert "8 MB" in message and "\n" not in message
        status, _h, body, reads = await asgi_call(private_app, "POST", "/api/jobs", admin, chunks=1, chunk=70_000)
        assert (status, reads) == (413, 0) and json.loads(body)["error"] == "too_large"
        # chunked: stopped as soon as it passes the limit
        status, _h, body, reads = await asgi_call(private_app, "POST", "/api/jobs", admin, chunks=100,
                                                  chunk=16_384, declared=False)
        assert status == 413 and reads == 5 and json.loads(body)["error"] == "too_large"
    asyncio.run(run())


def test_a_live_server_answers_401_without_waiting_for_the_body(private_app):
    """Over a real socket: 100 MB declared, 256 KB sent, and the 401 comes back (and the connection
    closes) while the client has not sent the rest, so the server never read it."""
    with LiveServer(private_app) as server:
        with socket.create_connection(("127.0.0.1", server.config.port), timeout=30) as sock:
            sock.sendall(b"POST /api/batches HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 104857600\r\n\r\n" + b"[" * 262_144)
            reply = b""
            while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
                part = sock.recv(65536)
                if not part:
                    break
                reply += part
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 401") and b"connection: close" in head.lower()
        assert json.loads(body)["error"] == "unauthorized"
        # a second connection: the server still serves
        assert httpx.get(f"{server.url}/healthz", timeout=10).status_code in (200, 503)


# -- 2. body limits: a batch of 10,000 still fits and is parsed off the event loop ------------------
def test_a_batch_of_10000_items_fits_and_is_validated_in_a_worker_thread(tmp_path, model_file, media, monkeypatch):
    from vqscope.service import schemas

    app = make_app(tmp_path, model_file, media)
    item = {"path": str(media / "a.mp4"), "tags": ["cam17", "night"], "max_clips": 8}
    # the last item is invalid: the whole 10,000 are read and validated (in a thread), nothing is stored
    items = [item] * 9_999 + [{**item, "clip_seconds": 1e-9}]
    body = json.dumps({"items": items, "tags": ["bulk"]}).encode()
    assert len(body) < BodyLimits(1).limit_for("POST", "/api/batches") / 2  # twice the room, at least
    on_loop = []
    original = schemas.BatchRequest.model_validate_json.__func__

    def spy(cls, data, *args, **kwargs):
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:
            on_loop.append(False)
        return original(cls, data, *args, **kwargs)

    monkeypatch.setattr(schemas.BatchRequest, "model_validate_json", classmethod(spy))
    with TestClient(app) as client:
        json_headers = {**bearer(ADMIN), "Content-Type": "application/json"}
        r = client.post("/api/batches", content=body, headers=json_headers)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "items", 9999, "clip_seconds"]
        assert on_loop == [False]
        small = client.post("/api/batches", json={"items": [item] * 3, "tags": ["bulk"]}, headers=bearer(SUBMIT))
        assert small.status_code == 401  # no submit token configured here: only the admin token
        small = client.post("/api/batches", json={"items": [item] * 3, "tags": ["bulk"]}, headers=bearer(ADMIN))
        assert small.status_code == 202 and small.json()["counts"]["queued"] == 3
        assert all(j["tags"] == ["bulk", "cam17", "night"] for j in small.json()["jobs"])
        assert on_loop == [False, False]
        bad = client.post("/api/batches", json={"items": [{"path": "/a\u0000b"}]}, headers=bearer(ADMIN))
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][:4] == ["body", "items", 0, "path"]
        assert client.post("/api/batches", content=b"{not json", headers=json_headers).status_code == 422
        spec = client.get("/openapi.json").json()
        batch = spec["paths"]["/api/batches"]["post"]
        schema = batch["requestBody"]["content"]["application/json"]["schema"]
        ref = schema["properties"]["items"]["items"]["$ref"].rsplit("/", 1)[1]
        assert ref in spec["components"]["schemas"] and batch["security"]


# -- 3. long polls: no thread held, bounded ---------------------------------------------------------
def test_waiting_clients_hold_no_thread_and_wake_when_the_job_finishes(tmp_path, model_file, media):
    app = make_app(tmp_path, model_file, media, max_waits=64, max_waits_per_client=64)
    store, waits = app.state.service.store, app.state.service.waits
    job = store.submit([NewJob("path", str(media / "a.mp4"), "a.mp4")])[0]

    async def run():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            polls = [asyncio.create_task(client.get(f"/api/jobs/{job.id}", params={"wait": 30}))
                     for _ in range(45)]
            for _ in range(2000):  # until all 45 are waiting (no clock involved)
                if waits.waiting == 45:
                    break
                await asyncio.sleep(0.01)
            assert waits.waiting == 45
            assert anyio.to_thread.current_default_thread_limiter().borrowed_tokens == 0
            health = await client.get("/healthz")
            assert health.status_code in (200, 503)
            await anyio.to_thread.run_sync(finish, store, job)
            replies = await asyncio.gather(*polls)
        assert {r.status_code for r in replies} == {200}
        assert {r.json()["state"] for r in replies} == {"done"}
        assert waits.waiting == 0

    asyncio.run(run())


def test_waits_beyond_the_bounds_get_429_with_retry_after(tmp_path, model_file, media):
    app = make_app(tmp_path, model_file, media, max_waits=3, max_waits_per_client=2)
    store, waits = app.state.service.store, app.state.service.waits
    job = store.submit([NewJob("path", str(media / "a.mp4"), "a.mp4")])[0]

    async def run():
        def client(address):
            return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(address, 1234)),
                                     base_url="http://test")

        async with client("10.0.0.1") as a, client("10.0.0.2") as b, client("10.0.0.3") as c:
            url, params = f"/api/jobs/{job.id}", {"wait": 30}
            held = [asyncio.create_task(a.get(url, params=params)) for _ in range(2)]
            while waits.waiting < 2:
                await asyncio.sleep(0.01)
            per_client = await a.get(url, params=params)
            assert per_client.status_code == 429 and per_client.headers["retry-after"] == "1"
            assert per_client.json()["error"] == "too_many_waits"
            held.append(asyncio.create_task(b.get(url, params=params)))
            while waits.waiting < 3:
                await asyncio.sleep(0.01)
            total = await c.get(url, params=params)
            assert total.status_code == 429 and "already waiting" in total.json()["message"]
            now = await c.get(url)  # no wait: always answered
            assert now.status_code == 200 and now.json()["state"] == "queued"
            await anyio.to_thread.run_sync(finish, store, job)
            assert {r.status_code for r in await asyncio.gather(*held)} == {200}
        assert waits.waiting == 0 and waits.refused == 2

    asyncio.run(run())


# -- 4. who may read what -----------------------------------------------------------------------------
def test_roles_and_private_reads(private, media):
    reads = ["/api/jobs", "/api/alert-rules", "/api/alerts", "/api/dashboard", "/metrics", "/api/batches/x"]
    for path in reads:
        assert private.get(path).status_code == 401, path
        assert private.get(path, headers=bearer("nope")).status_code == 401, path
        for token in (READ, SUBMIT, ADMIN):
            assert private.get(path, headers=bearer(token)).status_code in (200, 404), (path, token)
    for path in ("/healthz", "/dashboard", "/static/dashboard.js", "/openapi.json"):
        assert private.get(path).status_code in (200, 503), path
    assert private.get("/api/rate/not-a-token").status_code == 404  # raters: their own token, not ours
    body = {"path": str(media / "a.mp4")}
    assert private.post("/api/jobs", json=body, headers=bearer(READ)).status_code == 403
    job = private.post("/api/jobs", json=body, headers=bearer(SUBMIT))
    assert job.status_code == 202, job.text
    assert private.get(f"/api/jobs/{job.json()['id']}", headers=bearer(READ)).json()["state"] == "queued"
    rule = {"name": "r", "metric": "queued_jobs", "threshold": 1000}
    assert private.put("/api/alert-rules/r", json=rule, headers=bearer(SUBMIT)).status_code == 403
    assert private.put("/api/alert-rules/r", json=rule, headers=bearer(ADMIN)).status_code == 200
    assert private.delete("/api/alert-rules/r", headers=bearer(SUBMIT)).status_code == 403
    assert private.get("/api/studies", headers=bearer(SUBMIT)).status_code == 403
    assert private.get("/api/studies", headers=bearer(READ)).status_code == 403
    assert private.get("/api/studies", headers=bearer(ADMIN)).status_code == 200
    assert private.get("/api/studies/x/export", headers=bearer(READ)).status_code == 403


def test_reads_stay_open_by_default(tmp_path, model_file, media):
    with TestClient(make_app(tmp_path, model_file, media, submit_token=SUBMIT)) as client:
        assert client.get("/api/jobs").status_code == 200 and client.get("/metrics").status_code == 200
        assert client.post("/api/jobs", json={"path": str(media / "a.mp4")}).status_code == 401
        assert client.get("/api/studies").status_code == 401


def test_the_access_rules_and_their_configuration(monkeypatch):
    assert route_role("GET", "/healthz") == Role.PUBLIC and route_role("GET", "/api/jobs") == Role.READER
    assert route_role("POST", "/api/jobs") == Role.WRITER and route_role("GET", "/api/studies/{study_id}") == Role.ADMIN
    assert route_role("POST", None) == Role.ADMIN and route_role("GET", None) == Role.READER
    assert route_role("POST", "/api/rate/{token}/tasks/{position}") == Role.PUBLIC
    policy = AccessPolicy(ADMIN, SUBMIT, READ, open_reads=False)
    assert [policy.grant(h) for h in (None, f"Bearer {READ}", f"bearer {SUBMIT}", f"Bearer {ADMIN}", "Bearer x",
                                      f"Basic {ADMIN}", "Bearer ")] == \
        [Role.PUBLIC, Role.READER, Role.WRITER, Role.ADMIN, None, None, None]
    with pytest.raises(ConfigError, match="differ"):
        AccessPolicy(ADMIN, read_token=ADMIN, open_reads=False)
    with pytest.raises(ConfigError, match="contradicts"):
        AccessPolicy(ADMIN, read_token=READ, open_reads=True)
    config = ServiceConfig(token=ADMIN)
    assert AccessPolicy.from_config(config, ADMIN).open_reads
    monkeypatch.setenv("VQSCOPE_READ_TOKEN", "from-env")
    from_env = AccessPolicy.from_config(config, ADMIN)
    assert from_env.read_token == "from-env" and not from_env.open_reads
    # vqscope serve: open on loopback, private elsewhere, unless told
    assert serve_open_reads("127.0.0.1", False, False, None) is None
    assert serve_open_reads("::1", False, False, None) is None
    assert serve_open_reads("0.0.0.0", False, False, None) is False
    assert serve_open_reads("0.0.0.0", True, False, None) is True
    assert serve_open_reads("127.0.0.1", False, True, None) is False
    assert serve_open_reads("127.0.0.1", False, False, READ) is False
    with pytest.raises(ConfigError):
        serve_open_reads("0.0.0.0", True, False, READ)


def test_serve_refuses_contradictory_or_out_of_range_flags(tmp_path):
    from vqscope.cli import main

    base = ["serve", "--data-dir", str(tmp_path / "d"), "--token", ADMIN]
    assert main([*base, "--open-reads", "--read-token", READ, "--migrate-only"]) == 2
    assert main([*base, "--clip-seconds", "0.001", "--migrate-only"]) == 2
    assert main([*base, "--max-json-mb", "0", "--migrate-only"]) == 2
    with pytest.raises(SystemExit):  # argparse: mutually exclusive
        main([*base, "--open-reads", "--private-reads", "--migrate-only"])


# -- 5. secrets never leave the server ----------------------------------------------------------------
def test_redaction_rules():
    assert redact_url("https://user:pw@cdn.example.com:8443/v/a.mp4?X-Amz-Signature=abc#t=1") == \
        "https://redacted@cdn.example.com:8443/v/a.mp4?redacted#redacted"
    assert redact_url("http://[::1]:80/x") == "http://[::1]:80/x" and redact_url("/srv/a.mp4") == "/srv/a.mp4"
    assert redact_webhook("https://hooks.slack.com/services/T0/B0/SECRET") == "https://hooks.slack.com/redacted"
    assert redact_webhook("https://ops.example.com") == "https://ops.example.com"
    text = "https://u:p@h.example/a.mp4?sig=1: HTTP 403 Forbidden (see http://x.example/?token=2)."
    assert redact_text(text) == ("https://redacted@h.example/a.mp4?redacted: HTTP 403 Forbidden "
                                 "(see http://x.example/?redacted).")


def test_job_views_lists_and_dashboard_hide_url_credentials(private, private_app):
    store = private_app.state.service.store
    secret = "https://alice:s3cret@cdn.example.com:8443/videos/clip.mp4?X-Amz-Signature=deadbeef&X-Amz-Expires=60"
    r = private.post("/api/jobs", json={"url": secret, "tags": ["signed"]}, headers=bearer(SUBMIT))
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    shown = "https://redacted@cdn.example.com:8443/videos/clip.mp4?redacted"
    assert r.json()["source"] == shown == r.json()["video"]
    finish(store, store.get(job_id), error=f"{secret}: HTTP 403 Forbidden")
    # a job stored before this change kept the full URL as its name: still shown redacted
    old = store.submit([NewJob("url", secret, secret, ("signed",))])[0]
    finish(store, old, result=synthetic_result(secret, 10.0, 5.0, "bad"))
    everything = json.dumps([
        private.get("/api/jobs", params={"tag": "signed", "results": True}, headers=bearer(READ)).json(),
        private.get(f"/api/jobs/{job_id}", headers=bearer(READ)).json(),
        private.get(f"/api/jobs/{old.id}", headers=bearer(READ)).json(),
        private.get(f"/api/jobs/{old.id}/result", headers=bearer(READ)).json(),
        private.get(f"/api/jobs/{job_id}/result", headers=bearer(READ)).json(),
        private.get("/api/dashboard", params={"window": "1h"}, headers=bearer(READ)).json(),
    ])
    assert "s3cret" not in everything and "deadbeef" not in everything and "alice" not in everything
    assert shown in everything
    failed = private.get(f"/api/jobs/{job_id}", headers=bearer(READ)).json()
    assert failed["error"]["message"] == f"{shown}: HTTP 403 Forbidden"


def test_upload_errors_name_the_uploaded_file_not_the_storage_path(private, private_app):
    service = private_app.state.service
    stored_at = service.config.uploads_dir / "0123456789abcdef0123456789abcdef.mp4"
    job = service.store.submit([NewJob("upload", str(stored_at), "holiday clip.mp4", (), {}, delete_source=True,
                                       id="0123456789abcdef0123456789abcdef")])[0]
    finish(service.store, job, error=f"{stored_at}: not a video file (format not recognised)")
    view = private.get(f"/api/jobs/{job.id}", headers=bearer(READ)).json()
    assert view["error"]["message"] == "holiday clip.mp4: not a video file (format not recognised)"
    result = private.get(f"/api/jobs/{job.id}/result", headers=bearer(READ)).json()
    assert result["message"] == view["error"]["message"]
    assert str(service.config.data_dir) not in json.dumps(private.get("/api/jobs", headers=bearer(READ)).json())


def test_webhooks_are_write_only(private, monkeypatch):
    def no_lookups(*args, **kwargs):
        raise AssertionError(f"name resolution attempted: {args[:2]}")

    monkeypatch.setattr(socket, "getaddrinfo", no_lookups)  # storing a rule must not touch the network
    hook = "https://hooks.example.com/services/T000/B000/XXXXSECRET?token=abc"
    rule = {"name": "hooked", "metric": "queued_jobs", "threshold": 10_000, "webhook": hook}
    r = private.put("/api/alert-rules/hooked", json=rule, headers=bearer(ADMIN))
    assert r.status_code == 200, r.text
    listed = private.get("/api/alert-rules", headers=bearer(READ)).json()
    shown = next(x for x in listed if x["rule"]["name"] == "hooked")
    assert "SECRET" not in json.dumps(listed) and "token=abc" not in json.dumps(listed)
    assert shown["rule"]["webhook"] == "https://hooks.example.com/redacted"
    assert shown["webhook_set"] and shown["webhook_host"] == "hooks.example.com"
    # sending the shown rule back keeps the real webhook; a redacted URL of another host is refused
    assert private.put("/api/alert-rules/hooked", json=shown["rule"], headers=bearer(ADMIN)).status_code == 200
    store = private.app.state.service.store
    assert next(s for s in store.rules() if s.name == "hooked").spec["webhook"] == hook
    other = {**shown["rule"], "webhook": "https://elsewhere.example.com/redacted"}
    assert private.put("/api/alert-rules/hooked", json=other, headers=bearer(ADMIN)).status_code == 422
    for bad in ("http://", "http:///path", "https://:443/x", "http://host:99999/x", "ftp://host/x"):
        r = private.put("/api/alert-rules/hooked", json={**rule, "webhook": bad}, headers=bearer(ADMIN))
        assert r.status_code == 422, bad
    assert private.delete("/api/alert-rules/hooked", headers=bearer(ADMIN)).status_code == 204


def test_log_lines_hide_url_credentials(private, caplog):
    caplog.set_level(logging.INFO, logger="vqscope.service")
    logging.getLogger("vqscope.service").warning("could not fetch %s", "https://bob:pw@files.example.com/a?sig=x")
    try:
        raise RuntimeError("fetching https://bob:pw@files.example.com/a?sig=x failed")
    except RuntimeError:
        logging.getLogger("vqscope.service").exception("job failed")
    assert "pw@" not in caplog.text and "sig=x" not in caplog.text
    assert "https://redacted@files.example.com/a?redacted" in caplog.text


# -- 6. input bounds ----------------------------------------------------------------------------------
def test_input_bounds_are_422_not_500(private, media):
    def post(**body):
        return private.post("/api/jobs", json=body, headers=bearer(ADMIN))

    for path in ("/tmp/a\u0000b.mp4", "/" + "a" * 5000, "/tmp/" + "b" * 300 + "/c.mp4"):
        r = post(path=path)
        assert r.status_code == 422 and r.json()["error"] == "invalid_request", (path[:20], r.text[:200])
    lone = private.post("/api/jobs", content=b'{"path": "/tmp/\\ud800.mp4"}',  # an unpaired surrogate
                        headers={**bearer(ADMIN), "Content-Type": "application/json"})
    assert lone.status_code == 422, lone.text
    assert post(path=str(media / "a.mp4"), video="v" * 1001).status_code == 422
    assert post(path=str(media / "a.mp4"), video="v" * 1000).status_code == 202
    assert post(path=str(media / "a.mp4"), video="x" * 5_000_000).status_code == 413  # over the 64 KB body limit
    assert post(path=str(media / "a.mp4"), video="bad\u0000name").status_code == 422
    assert post(path=str(media / "a.mp4"), tags=["ok", "bad\u0000tag"]).status_code == 422
    assert post(path=str(media / "a.mp4"), tags=["t"] * 200).status_code == 422
    assert post(url="https://example.com/" + "a" * 9000).status_code == 422
    assert post(path=str(media / "a.mp4"), clip_seconds=1e-9).status_code == 422
    assert post(path=str(media / "a.mp4"), clip_seconds=0.1).status_code == 202
    assert post(path=str(media / "a.mp4"), clip_seconds=61).status_code == 422
    upload = private.post("/api/jobs/upload", files={"file": ("x.mp4", b"x" * 100)}, data={"clip_seconds": "1e-9"},
                          headers=bearer(ADMIN))
    assert upload.status_code == 422


def test_an_upload_name_loses_its_control_characters(private):
    body = (b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="evil\x00\x07name.mp4"\r\n'
            b"Content-Type: video/mp4\r\n\r\n" + b"x" * 100 + b"\r\n--xyz--\r\n")
    r = private.post("/api/jobs/upload", content=body,
                     headers={**bearer(SUBMIT), "Content-Type": "multipart/form-data; boundary=xyz"})
    assert r.status_code == 202, r.text
    assert r.json()["video"] == "evilname.mp4"


# -- 7. HTTP request metrics --------------------------------------------------------------------------
def test_http_requests_are_counted_by_route_template_and_status(private):
    private.get("/api/jobs/no-such-job", headers=bearer(READ))
    private.get("/api/jobs/another-one", headers=bearer(READ))
    private.get("/api/jobs")  # refused by the token check: counted too
    private.get("/not/a/route", headers=bearer(READ))
    text = private.get("/metrics", headers=bearer(READ)).text
    line = next(l for l in text.splitlines() if l.startswith("vqscope_http_requests_total{")
                and 'route="/api/jobs/{job_id}"' in l and 'status="404"' in l)
    assert 'method="GET"' in line and float(line.rsplit(" ", 1)[1]) >= 2
    assert 'route="/api/jobs",status="401"' in text and 'route="unmatched",status="404"' in text
    assert 'vqscope_http_request_duration_seconds_bucket{le="0.005",method="GET",route="/api/jobs/{job_id}"}' in text
    assert "no-such-job" not in text


# -- the dashboard asks for the token ------------------------------------------------------------------
def test_the_dashboard_asks_for_a_token_and_keeps_it_for_the_tab(browser, tmp_path, model_file, media):
    app = make_app(tmp_path, model_file, media, read_token=READ)
    store = app.state.service.store
    job = store.submit([NewJob("path", str(media / "a.mp4"), "a.mp4", ("dash",))])[0]
    finish(store, job)
    with LiveServer(app) as server:
        page = browser.new_page()
        errors, external = [], []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda req: external.append(req.url) if not req.url.startswith(server.url) else None)
        page.goto(f"{server.url}/dashboard?window=1h")
        page.wait_for_selector("body[data-error='unauthorized']", state="attached", timeout=20_000)
        assert page.is_visible("#login") and not page.is_visible("#board")
        assert "needs a token" in page.inner_text("#login-why")
        page.fill("#token", "wrong-token")
        page.click("#login button[type=submit]")
        wait_until(lambda: "not accepted" in page.inner_text("#login-why"), 20, what="the refusal")
        page.fill("#token", READ)
        page.click("#login button[type=submit]")
        page.wait_for_selector("body[data-ready='1']", state="attached", timeout=20_000)
        assert page.is_visible("#board") and not page.is_visible("#login")
        assert page.inner_text("#tile-done .value") == "1"
        assert page.evaluate("sessionStorage.getItem('vqscope.token')") == READ
        assert READ not in page.url
        page.reload()  # same tab: the token is still there, no form
        page.wait_for_selector("body[data-ready='1']", state="attached", timeout=20_000)
        assert not page.is_visible("#login")
        page.click("#forget")
        assert page.evaluate("sessionStorage.getItem('vqscope.token')") is None and page.is_visible("#login")
        assert errors == [] and external == []
        page.close()
