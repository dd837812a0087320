"""The HTTP API on a real SQLite file: submit, fetch, list, filter, batches, auth, limits, metrics."""

from __future__ import annotations

import shutil

import pytest

from service_support import AUTH, TOKEN, TestClient, WebhookReceiver, file_server, tiny_model_file, wait_until
from test_model import CONTRACT_KEYS
from vqscope.service import ServiceConfig, create_app
from vqscope.service.sources import PathNotAllowedError, check_path


@pytest.fixture(scope="module")
def media(tmp_path_factory, video_factory):
    folder = tmp_path_factory.mktemp("media")
    for i, (n, speed) in enumerate([(48, 3), (36, 7), (60, 1), (30, 5)]):
        shutil.copy(video_factory(f"v{i}.mp4", n=n, speed=speed, seed=i), folder / f"v{i}.mp4")
    (folder / "notes.mp4").write_text("not a video")
    return folder


@pytest.fixture(scope="module")
def config(tmp_path_factory, media):
    root = tmp_path_factory.mktemp("service")
    # paths only from the media folder, and fetches from the local file server and webhook receiver
    return ServiceConfig(data_dir=root / "data", model=tiny_model_file(root), token=TOKEN, workers=2, poll_s=0.05,
                         lease_s=5, max_upload_bytes=400_000, path_roots=(media,), allow_fetch=("127.0.0.1/32",))


@pytest.fixture(scope="module")
def client(config):
    with TestClient(create_app(config)) as c:
        yield c


def submit(client, **body):
    r = client.post("/api/jobs", json=body, headers=AUTH)
    assert r.status_code == 202, r.text
    return r.json()


def wait(client, job_id):
    r = client.get(f"/api/jobs/{job_id}", params={"wait": 30})
    assert r.status_code == 200 and r.json()["state"] in ("done", "failed"), r.text
    return r.json()


def test_the_database_is_a_file_in_the_data_folder(client, config):
    assert (config.data_dir / "vqscope.db").is_file()
    health = client.get("/healthz").json()
    assert (health["status"], health["database"], health["model"], health["workers"]) == ("ok", "sqlite", "tiny@1", 2)


def test_every_write_needs_the_token(client, media):
    video = str(media / "v0.mp4")
    assert client.post("/api/jobs", json={"path": video}).status_code == 401
    assert client.post("/api/jobs", json={"path": video}, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.post("/api/batches", json={"items": [{"path": video}]}).status_code == 401
    with open(video, "rb") as fh:
        assert client.post("/api/jobs/upload", files={"file": ("v.mp4", fh)}).status_code == 401
    assert client.put("/api/alert-rules/x", json={"name": "x", "metric": "mean_score", "threshold": 1}).status_code == 401
    assert client.delete("/api/alert-rules/x").status_code == 401
    assert client.post("/api/alert-rules/evaluate").status_code == 401
    assert client.get("/api/jobs").status_code == 200  # reads are open


def test_submit_a_path_and_fetch_the_result(client, media):
    job = submit(client, path=str(media / "v0.mp4"), tags=["cam1", "day"], max_clips=1)
    assert job["state"] == "queued" and job["tags"] == ["cam1", "day"] and job["options"] == {"max_clips": 1}
    done = wait(client, job["id"])
    assert done["state"] == "done" and done["model"] == "tiny@1" and done["attempts"] == 1
    result = client.get(f"/api/jobs/{job['id']}/result").json()
    assert list(result)[: len(CONTRACT_KEYS)] == CONTRACT_KEYS
    assert result == done["result"] and len(result["clips"]) == 1
    assert done["score"] == result["score"] and done["grade"] == result["grade"]
    assert 0 <= done["scaled_score"] <= 100
    assert client.get("/api/jobs/nope").status_code == 404


def test_upload_is_scored_and_removed_and_the_size_limit_holds(client, media, config):
    with open(media / "v1.mp4", "rb") as fh:
        r = client.post("/api/jobs/upload", files={"file": ("holiday clip.mp4", fh, "video/mp4")},
                        data={"tags": "phone,upload", "clip_seconds": "0.5"}, headers=AUTH)
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["source_kind"] == "upload" and job["source"] is None and job["tags"] == ["phone", "upload"]
    done = wait(client, job["id"])
    assert done["state"] == "done" and done["video"] == "holiday clip.mp4" == done["result"]["video"]
    assert list(config.uploads_dir.iterdir()) == []  # the upload is not kept once scored
    big = b"\0" * (config.max_upload_bytes + 70_000)
    r = client.post("/api/jobs/upload", files={"file": ("big.mp4", big)}, headers=AUTH)
    assert r.status_code == 413 and r.json()["error"] == "too_large"

    def chunks():  # no Content-Length: refused while streaming
        for _ in range(10):
            yield b"\0" * 60_000

    r = client.post("/api/jobs/upload", content=chunks(),
                    headers={**AUTH, "Content-Type": "multipart/form-data; boundary=xyz"})
    assert r.status_code == 413
    total = client.get("/api/jobs", params={"tag": "phone"}).json()["total"]
    assert total == 1  # nothing was accepted from the refused uploads


def test_a_url_is_fetched_by_the_worker(client, media):
    with file_server(str(media)) as base:
        ok = submit(client, url=f"{base}/v2.mp4")
        missing = submit(client, url=f"{base}/absent.mp4")
        assert wait(client, ok["id"])["state"] == "done"
        failed = wait(client, missing["id"])
    assert failed["state"] == "failed" and failed["error"]["kind"] == "download_failed"
    assert "404" in failed["error"]["message"]
    r = client.get(f"/api/jobs/{missing['id']}/result")
    assert r.status_code == 422 and r.json()["error"] == "download_failed"


def test_bad_sources_get_typed_answers(client, media, tmp_path):
    def post(**body):
        return client.post("/api/jobs", json=body, headers=AUTH)

    assert post(path="relative.mp4").json()["error"] == "bad_source"
    assert post(path=str(media / "absent.mp4")).json()["error"] == "not_found"
    assert post(path=str(media)).json()["error"] == "is_a_directory"
    assert post(url="ftp://example.com/x.mp4").json()["error"] == "bad_source"
    assert post(path=str(media / "v0.mp4"), url="http://x/y").status_code == 422
    assert post(path=str(media / "v0.mp4"), max_clips=0).status_code == 422
    # a video posted as multipart to the JSON endpoint: a typed 422, not a 500 echoing the bytes
    wrong = client.post("/api/jobs", files={"file": ("v.mp4", b"\x00\xcb\xff" * 100, "video/mp4")}, headers=AUTH)
    assert wrong.status_code == 422 and wrong.json()["error"] == "invalid_request", wrong.text
    bad = wait(client, submit(client, path=str(media / "notes.mp4"))["id"])
    assert bad["state"] == "failed" and bad["error"]["kind"] == "not_a_video"
    with pytest.raises(PathNotAllowedError):
        check_path(str(media / "v0.mp4"), roots=(tmp_path.resolve(),))
    assert check_path(str(media / "v0.mp4"), roots=(media.resolve(),)) == str((media / "v0.mp4").resolve())


def test_batch_and_bounded_concurrency(client, media):
    items = [{"path": str(media / f"v{i}.mp4"), "tags": [f"n{i}"]} for i in range(4)]
    r = client.post("/api/batches", json={"items": items, "tags": ["batch1"]}, headers=AUTH)
    assert r.status_code == 202, r.text
    batch = r.json()
    assert len(batch["jobs"]) == 4 and batch["counts"]["queued"] + batch["counts"]["running"] == 4
    assert all("batch1" in j["tags"] for j in batch["jobs"])
    final = wait_until(lambda: (b := client.get(f"/api/batches/{batch['id']}").json())["counts"]["done"] == 4 and b,
                       30, what="the batch")
    assert [j["video"] for j in final["jobs"]] == [i["path"] for i in items]
    assert client.app.state.service.pool.peak_in_flight <= 2  # --workers 2
    items = [{"path": str(media / "v0.mp4")}, {"path": str(media / "nope.mp4")}]
    bad = client.post("/api/batches", json={"items": items}, headers=AUTH)
    assert bad.status_code == 422  # all or nothing
    assert client.get("/api/batches/unknown").status_code == 404


def test_list_and_filter(client, media):
    job = wait(client, submit(client, path=str(media / "v3.mp4"), tags=["filter-me"])["id"])
    grade = job["grade"]

    def ids(**params):
        r = client.get("/api/jobs", params=params)
        assert r.status_code == 200, r.text
        return {j["id"] for j in r.json()["items"]}

    assert job["id"] in ids(tag="filter-me", grade=grade, state="done")
    assert job["id"] not in ids(tag="filter-me", grade="bad" if grade != "bad" else "good")
    assert job["id"] in ids(dimension=f"overall:{grade}", tag="filter-me")
    assert ids(dimension="blur", tag="filter-me") == set()  # tiny model reports no blur
    assert job["id"] in ids(since="1h") and ids(since="2099-01-01T00:00:00Z") == set()
    assert job["id"] in ids(until="2099-01-01", since=job["created_at"])
    assert ids(state="failed") and not ids(state="failed") & ids(state="done")
    page = client.get("/api/jobs", params={"limit": 2, "results": True}).json()
    assert len(page["items"]) == 2 and page["total"] >= 8 and page["items"][0]["result"] is not None
    assert client.get("/api/jobs", params={"state": "sleeping"}).status_code == 422
    assert client.get("/api/jobs", params={"since": "last tuesday"}).status_code == 422


def test_openapi_spec(client):
    spec = client.get("/openapi.json").json()
    for path in ("/api/jobs", "/api/jobs/upload", "/api/batches", "/api/jobs/{job_id}", "/api/jobs/{job_id}/result",
                 "/api/alert-rules/{name}", "/api/dashboard", "/healthz"):
        assert path in spec["paths"], path
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    upload = spec["paths"]["/api/jobs/upload"]["post"]
    assert "multipart/form-data" in upload["requestBody"]["content"] and upload["security"]
    assert "security" not in spec["paths"]["/api/jobs"]["get"]


def test_metrics_dashboard_and_alerts(client, media):
    wait(client, submit(client, path=str(media / "v0.mp4"))["id"])
    text = client.get("/metrics").text
    assert 'vqscope_jobs_submitted_total{source="path"}' in text
    assert 'vqscope_jobs{state="done"}' in text and "vqscope_job_duration_seconds_bucket" in text
    assert 'vqscope_model_info{' in text and "vqscope_store_up 1.0" in text
    page = client.get("/dashboard")
    assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
    assert "http://" not in page.text and "https://" not in page.text  # nothing external
    assert "createElementNS" in client.get("/static/dashboard.js").text
    assert client.get("/static/other.js").status_code == 404
    data = client.get("/api/dashboard", params={"window": "1h"}).json()
    assert data["summary"]["done"] >= 5 and sum(p["count"] for p in data["trend"]) == data["summary"]["done"]
    assert client.get("/api/dashboard", params={"window": "2y"}).status_code == 422

    hook = WebhookReceiver()
    try:
        rule = {"name": "any-video", "metric": "mean_score", "op": ">=", "threshold": 0, "window_s": 3600,
                "webhook": hook.url}
        r = client.put("/api/alert-rules/any-video", json=rule, headers=AUTH)
        assert r.status_code == 200 and r.json()["state"] == "ok"
        notes = client.post("/api/alert-rules/evaluate", headers=AUTH).json()["notifications"]
        assert [n["status"] for n in notes] == ["firing"]
        assert hook.received and hook.received[0]["rule"] == "any-video" and hook.received[0]["status"] == "firing"
        assert client.get("/api/alert-rules").json()[0]["state"] == "firing"
        events = client.get("/api/alerts").json()
        assert events[0]["delivered"] and events[0]["rule"] == "any-video"
        assert 'vqscope_alert_firing{rule="any-video"} 1.0' in client.get("/metrics").text
        assert client.put("/api/alert-rules/other", json=rule, headers=AUTH).status_code == 422
        assert client.put("/api/alert-rules/bad", json={**rule, "name": "bad", "metric": "nonsense"},
                          headers=AUTH).status_code == 422
        assert client.delete("/api/alert-rules/any-video", headers=AUTH).status_code == 204
        assert client.get("/api/alert-rules").json() == []
    finally:
        hook.close()


def test_jobs_and_results_survive_a_restart(client, config, media):
    job = wait(client, submit(client, path=str(media / "v1.mp4"), tags=["persist"])["id"])
    with TestClient(create_app(config)) as again:  # a second app on the same SQLite file
        seen = again.get(f"/api/jobs/{job['id']}").json()
        assert seen["state"] == "done" and seen["result"] == job["result"] and seen["tags"] == ["persist"]


def test_serve_migrate_only(tmp_path, capsys):
    from vqscope.cli import main

    assert main(["serve", "--data-dir", str(tmp_path / "d"), "--migrate-only"]) == 0
    assert "schema revision 0003" in capsys.readouterr().err
    assert (tmp_path / "d" / "vqscope.db").is_file()
    assert main(["serve", "--db", "nosuchdb://x", "--data-dir", str(tmp_path / "d"), "--migrate-only"]) == 2


def test_a_stored_rule_that_todays_checks_refuse_is_listed_with_its_problem(client):
    store = client.app.state.service.store
    store.put_rule("legacy", {"name": "legacy", "metric": "failure_rate", "threshold": 0.5, "webhook": "http://"})
    rules = client.get("/api/alert-rules", headers=AUTH)
    assert rules.status_code == 200
    legacy = next(r for r in rules.json() if r["rule"]["name"] == "legacy")
    assert legacy["webhook_set"] and legacy["rule"]["webhook"] is None and "PUT the rule again" in legacy["problem"]
    store.delete_rule("legacy")
