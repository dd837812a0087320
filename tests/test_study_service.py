"""Rating studies through the HTTP API: creating, inviting, rating, results, export, import,
and every way a request can be wrong (each a 4xx with one line, nothing stored lost)."""

from __future__ import annotations

import csv
import io
import shutil

import pytest
from sqlalchemy import text

from service_support import AUTH, TOKEN, TestClient, tiny_model_file
from vqscope.data.datasets import load_dataset
from vqscope.service import ServiceConfig, create_app
from vqscope.studies.store import hash_token


@pytest.fixture(scope="module")
def media(tmp_path_factory, video_factory):
    folder = tmp_path_factory.mktemp("study-media")
    for i in range(8):
        shutil.copy(video_factory(f"s{i}.mp4", n=24 + 6 * i, speed=1 + i, seed=20 + i), folder / f"s{i}.mp4")
    shutil.copy(video_factory("other.mkv", n=24, seed=3), folder / "other.mkv")
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 200)
    return folder


@pytest.fixture(scope="module")
def config(tmp_path_factory, media):
    root = tmp_path_factory.mktemp("study-service")
    return ServiceConfig(data_dir=root / "data", model=tiny_model_file(root), token=TOKEN, poll_s=0.05,
                         path_roots=(media,), max_upload_bytes=2_000_000)


@pytest.fixture(scope="module")
def client(config):
    with TestClient(create_app(config)) as c:
        yield c


def create(client, **body):
    r = client.post("/api/studies", json=body, headers=AUTH)
    assert r.status_code == 201, r.text
    return r.json()


def invite(client, study_id, n=1):
    r = client.post(f"/api/studies/{study_id}/raters", json={"count": n}, headers=AUTH)
    assert r.status_code == 201, r.text
    return r.json()["raters"]


def rate_all(client, token, score_of):
    """Answer every task of a rater with score_of(task) and return what was sent, by item."""
    sent = {}
    while True:
        task = client.get(f"/api/rate/{token}").json()["task"]
        if task is None:
            return sent
        score = score_of(task)
        r = client.post(f"/api/rate/{token}/tasks/{task['position']}", json={"score": score, "watched_s": 1.5})
        assert r.status_code == 201, r.text
        sent.setdefault(task["items"][0]["id"], []).append(score)


def test_a_study_from_paths_runs_from_invitation_to_results(client, media):
    paths = [str(media / f"s{i}.mp4") for i in range(5)]
    study = create(client, name="paths", paths=paths, repeats=1,
                   anchors=[{"path": str(media / "s7.mp4"), "label": "poor"}])
    assert study["items"] == 6 and [i["kind"] for i in study["item_list"]].count("anchor") == 1
    raters = invite(client, study["id"], 3)
    assert all(r["link"].endswith("/rate/" + r["token"]) for r in raters)
    video_score = {i["id"]: 1 + k % 5 for k, i in enumerate(study["item_list"])}
    for k, rater in enumerate(raters):
        state = client.get(f"/api/rate/{rater['token']}").json()
        assert state["progress"] == {"done": 0, "total": 7, "training_done": 0, "training_total": 1}
        assert state["task"]["phase"] == "training" and state["task"]["items"][0]["label"] == "poor"
        rate_all(client, rater["token"], lambda t: video_score[t["items"][0]["id"]])
        assert client.get(f"/api/rate/{rater['token']}").json()["progress"]["done"] == 7
    results = client.get(f"/api/studies/{study['id']}/results", headers=AUTH).json()
    rows = {row["item"]: row for row in results["items"]}
    assert len(rows) == 5  # the five videos; the anchor's training answers are not a MOS
    for item_id, row in rows.items():
        assert row["mos"] == video_score[item_id] and row["count"] == 3 and row["std"] == 0
    shown = client.get(f"/api/studies/{study['id']}", headers=AUTH).json()
    assert [r["done"] for r in shown["rater_list"]] == [7, 7, 7]


def test_rating_errors_are_one_line_4xx_and_lose_nothing(client, media):
    study = create(client, name="errors", paths=[str(media / "s0.mp4"), str(media / "s1.mp4")], repeats=0,
                   anchors=[{"path": str(media / "s2.mp4"), "label": "good"}])
    (rater,) = invite(client, study["id"])
    token = rater["token"]
    assert client.get("/api/rate/not-a-token").status_code == 404
    page = client.get("/rate/not-a-token")
    assert page.status_code == 404 and "Rating link not valid" in page.text
    assert page.headers["content-type"].startswith("text/html")
    r = client.post(f"/api/rate/{token}/tasks/1", json={"score": 3})
    assert (r.status_code, r.json()["error"]) == (409, "out_of_order")  # training first
    for body in ({"score": 6}, {"score": 0}, {"score": 2.5}, {}, {"preferred": "first"},
                 {"score": 3, "dimensions": {"color": 3}}):
        r = client.post(f"/api/rate/{token}/tasks/0", json=body)
        assert r.status_code == 422 and "\n" not in r.json()["message"], body
    assert client.post(f"/api/rate/{token}/tasks/0", json={"score": 4}).status_code == 201
    r = client.post(f"/api/rate/{token}/tasks/0", json={"score": 1})
    assert (r.status_code, r.json()["error"]) == (409, "duplicate_rating")
    assert client.post(f"/api/rate/{token}/tasks/99", json={"score": 3}).status_code == 404
    # media: only what is on the rater's list, with byte ranges for the player
    task = client.get(f"/api/rate/{token}").json()["task"]
    part = client.get(task["items"][0]["media"], headers={"Range": "bytes=0-9"})
    assert part.status_code == 206 and len(part.content) == 10
    other = create(client, name="other", paths=[str(media / "s3.mp4")])
    foreign = other["item_list"][0]["id"]
    assert client.get(f"/api/rate/{token}/media/{foreign}").status_code == 404
    # a closed study takes no more ratings, keeps what it has
    assert client.post(f"/api/studies/{study['id']}/close", headers=AUTH).json()["state"] == "closed"
    r = client.post(f"/api/rate/{token}/tasks/{task['position']}", json={"score": 3})
    assert (r.status_code, r.json()["error"]) == (409, "study_closed")
    assert client.get(f"/api/rate/{token}").json()["task"] is None
    assert client.get(f"/api/studies/{study['id']}", headers=AUTH).json()["ratings"] == 1


def test_operator_routes_need_the_token_and_raters_cannot_use_theirs(client, media):
    study = create(client, name="auth", paths=[str(media / "s0.mp4")])
    (rater,) = invite(client, study["id"])
    for method, url in [("get", "/api/studies"), ("get", f"/api/studies/{study['id']}"),
                        ("get", f"/api/studies/{study['id']}/results"), ("get", f"/api/studies/{study['id']}/export"),
                        ("post", f"/api/studies/{study['id']}/close"), ("post", f"/api/studies/{study['id']}/raters")]:
        assert getattr(client, method)(url).status_code == 401
        rater_auth = {"Authorization": f"Bearer {rater['token']}"}
        assert getattr(client, method)(url, headers=rater_auth).status_code == 401
    assert client.post("/api/studies", json={"name": "x", "paths": [str(media / "s0.mp4")]}).status_code == 401


def test_the_store_keeps_only_a_hash_of_each_link(client, config, media):
    study = create(client, name="hash", paths=[str(media / "s0.mp4")])
    (rater,) = invite(client, study["id"])
    engine = client.app.state.service.store.engine
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT token_hash FROM vqscope_study_raters WHERE id = :i"),
                              {"i": rater["id"]}).scalar_one()
    assert stored == hash_token(rater["token"]) and rater["token"] not in (config.data_dir / "vqscope.db").read_bytes().decode(
        "latin-1")
    listed = client.get(f"/api/studies/{study['id']}", headers=AUTH).json()
    assert "token" not in str(listed["rater_list"])


def test_bad_sources_are_refused_before_anything_is_stored(client, media, tmp_path):
    before = client.get("/api/studies", headers=AUTH).json()
    cases = [
        ({"paths": [str(media / "broken.mp4")]}, 422, "broken.mp4"),
        ({"paths": [str(media / "missing.mp4")]}, 422, "missing.mp4"),
        ({"paths": [str(tmp_path)]}, 403, "outside"),
        ({"paths": ["relative.mp4"]}, 403, "outside"),
        ({"paths": []}, 422, "no video to rate"),
        ({"jobs": ["nosuchjob"]}, 422, "no job nosuchjob"),
        ({"paths": [str(media / "s0.mp4")], "anchors": [{"path": str(media / "s1.mp4")}]}, 422, "label"),
        ({"paths": [str(media / "s0.mp4")], "method": "pairwise"}, 422, "two videos"),
        ({"paths": [str(media / "s0.mp4")], "select": 1}, 422, "scored"),
    ]
    for body, status, words in cases:
        r = client.post("/api/studies", json={"name": "bad", **body}, headers=AUTH)
        assert r.status_code == status and words in r.json()["message"], (body, r.text)
        assert "\n" not in r.json()["message"]
    assert client.get("/api/studies", headers=AUTH).json() == before


def test_a_video_the_browser_cannot_play_gets_a_rating_copy(client, media):
    study = create(client, name="copy", paths=[str(media / "other.mkv"), str(media / "s0.mp4")])
    kept, copied = study["item_list"][1], study["item_list"][0]
    assert "rating_copy" in copied["info"] and "rating_copy" not in kept["info"]
    (rater,) = invite(client, study["id"])
    task = client.get(f"/api/rate/{rater['token']}").json()["task"]
    assert task["items"][0]["media_type"] == "video/mp4"
    assert client.get(task["items"][0]["media"]).content[4:8] == b"ftyp"


def test_a_study_from_a_query_over_scored_jobs_chooses_with_reasons(client, media):
    ids = []
    for i in range(8):
        r = client.post("/api/jobs", json={"path": str(media / f"s{i}.mp4"), "tags": ["week49"]}, headers=AUTH)
        ids.append(r.json()["id"])
    for job_id in ids:
        assert client.get(f"/api/jobs/{job_id}", params={"wait": 30}).json()["state"] == "done"
    study = create(client, name="weekly", query={"since": "1h", "tags": ["week49"]}, select=4, bands=2)
    assert study["items"] == 4
    for item in study["item_list"]:
        assert item["job_id"] in ids and item["model_score"] is not None
        assert "band" in item["reason"]
    no_jobs = client.post("/api/studies", json={"name": "none", "query": {"tags": ["nothing"]}}, headers=AUTH)
    assert no_jobs.status_code == 422 and "no scored" in no_jobs.json()["message"]


def test_uploads_join_a_study_until_raters_are_invited(client, media):
    study = create(client, name="uploads", paths=[str(media / "s0.mp4")])
    with open(media / "s1.mp4", "rb") as fh:
        r = client.post(f"/api/studies/{study['id']}/items/upload", files={"file": ("mine.mp4", fh, "video/mp4")},
                        headers=AUTH)
    assert r.status_code == 201 and r.json()["video"] == "mine.mp4" and r.json()["source_kind"] == "upload"
    r = client.post(f"/api/studies/{study['id']}/items/upload", files={"file": ("x.mp4", b"nonsense", "video/mp4")},
                    headers=AUTH)
    assert r.status_code == 422 and r.json()["error"] == "not_a_video"
    invite(client, study["id"])
    with open(media / "s2.mp4", "rb") as fh:
        r = client.post(f"/api/studies/{study['id']}/items/upload", files={"file": ("late.mp4", fh, "video/mp4")},
                        headers=AUTH)
    assert (r.status_code, r.json()["error"]) == (409, "study_frozen")
    assert client.get(f"/api/studies/{study['id']}", headers=AUTH).json()["items"] == 2


def test_export_is_a_dataset_and_ratings_import_back(client, media, tmp_path):
    study = create(client, name="export", paths=[str(media / f"s{i}.mp4") for i in range(4)], repeats=0)
    raters = invite(client, study["id"], 2)
    truth = {i["id"]: 2 + k % 3 for k, i in enumerate(study["item_list"])}
    for rater in raters:
        rate_all(client, rater["token"], lambda t: truth[t["items"][0]["id"]])
    exported = client.get(f"/api/studies/{study['id']}/export", params={"format": "csv"}, headers=AUTH)
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    path = tmp_path / "study.csv"
    path.write_text(exported.text)
    dataset = load_dataset(f"csv:{path}")
    assert len(dataset.items) == 4 and dataset.scale == (1.0, 5.0)
    by_path = {item.path: item.mos for item in dataset.items}
    assert by_path == {str(media / f"s{k}.mp4"): 2 + k % 3 for k in range(4)}
    finevd = client.get(f"/api/studies/{study['id']}/export", params={"format": "finevd"}, headers=AUTH).json()
    assert {r["video"] for r in finevd} == {f"s{k}.mp4" for k in range(4)}
    # the raw ratings import back into a new study without changing a MOS
    raw = client.get(f"/api/studies/{study['id']}/export", params={"format": "ratings"}, headers=AUTH).text
    assert list(csv.reader(io.StringIO(raw)))[0][:3] == ["rater", "video", "score"]
    twin = create(client, name="twin", paths=[str(media / f"s{i}.mp4") for i in range(4)])
    for attempt in (1, 2):  # a second import of the same file adds nothing
        r = client.post(f"/api/studies/{twin['id']}/ratings/import", files={"file": ("r.csv", raw, "text/csv")},
                        headers=AUTH)
        assert r.json() == ({"added": 8, "skipped": 0, "raters": 2} if attempt == 1
                            else {"added": 0, "skipped": 8, "raters": 2})
    mos = {row["video"]: row["mos"] for row in client.get(f"/api/studies/{twin['id']}/results",
                                                          headers=AUTH).json()["items"]}
    assert mos == {f"s{k}.mp4": 2 + k % 3 for k in range(4)}


GOOD_ROW = b"z,s0.mp4,3\n"  # a valid row beside each bad one: a bad file stores none of its rows


@pytest.mark.parametrize("content, words", [
    (b"", "empty file"),
    (b"who,what\nx,y\n", "no rater column"),
    (b"rater,video,score\n" + GOOD_ROW + b"a,s0.mp4,7\n", "from 1"),
    (b"rater,video,score\n" + GOOD_ROW + b"a,s0.mp4,good\n", "not a number"),
    (b"rater,video,score\n" + GOOD_ROW + b"a,s0.mp4,nan\n", "not a number"),
    (b"rater,video,score\n" + GOOD_ROW + b"a,unknown.mp4,3\n", "no video"),
    (b"rater,video,score,tags\n" + GOOD_ROW + b"a,s0.mp4,3,smudge\n", "unknown distortion type"),
    (b"\xff\xfe\x00bad", "UTF-8"),
])
def test_bad_rating_files_are_refused_whole(client, media, content, words):
    study = create(client, name="imports", paths=[str(media / "s0.mp4")])
    r = client.post(f"/api/studies/{study['id']}/ratings/import", files={"file": ("r.csv", content)},
                    headers=AUTH)
    assert r.status_code == 422 and words in r.json()["message"], r.text
    assert client.get(f"/api/studies/{study['id']}", headers=AUTH).json()["ratings"] == 0


def test_unknown_studies_are_404(client):
    for method, url in [("get", "/api/studies/nope"), ("get", "/api/studies/nope/results"),
                        ("post", "/api/studies/nope/close"), ("get", "/api/studies/nope/export")]:
        r = getattr(client, method)(url, headers=AUTH)
        assert (r.status_code, r.json()["error"]) == (404, "unknown_study")
    r = client.post("/api/studies/nope/raters", json={"count": 1}, headers=AUTH)
    assert r.status_code == 404
