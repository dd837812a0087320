"""Asking for some dimensions only: Result.only, `vqscope score --dimensions`, and the service's `dimensions`."""

from __future__ import annotations

import json
import shutil

import pytest

from fine_results import fine_model, fine_result, overall_only_result
from service_support import AUTH, TOKEN, TestClient, tiny_model_file
from test_model import tiny_model
from vqscope.cli import main
from vqscope.errors import ConfigError
from vqscope.errors import NotPredictedError
from vqscope.result import Result, parse_dimensions
from vqscope.service import ServiceConfig, create_app


def test_only_keeps_the_dimensions_and_their_distortions_at_both_levels():
    r = fine_result()
    kept = r.only("color, blur")
    assert list(kept.dimensions) == ["color", "blur"]
    assert set(kept.distortions) == {"overexposure", "underexposure", "color_cast", "defocus_blur", "motion_blur"}
    for clip in kept.clips:
        assert list(clip.dimensions) == ["color", "blur"]
        assert set(clip.distortions) == set(kept.distortions)
    assert kept.score == r.score and kept.grade == r.grade and kept.description == r.description
    assert len(r.dimensions) == 6 and len(r.clips[0].distortions) == 12  # the original is untouched
    assert set(r.only(["overall"]).distortions) == set(r.distortions)  # overall gathers every type
    assert Result.from_dict(json.loads(kept.to_json())).to_dict() == kept.to_dict()


def test_unknown_and_unpredicted_dimensions_are_typed_errors():
    with pytest.raises(ConfigError, match=r"unknown dimension 'colr' \(dimensions: color, noise, artifact, blur, "
                                          r"temporal, overall\); did you mean 'color'\?"):
        parse_dimensions("colr")
    with pytest.raises(ConfigError, match="no dimension named"):
        parse_dimensions(" , ")
    assert parse_dimensions("Colour,blur,blur") == ("color", "blur")
    with pytest.raises(NotPredictedError, match=r"model lite@1 does not predict the dimension\(s\) blur "
                                                r"\(it predicts: overall\)"):
        overall_only_result().only("blur,overall")


@pytest.fixture
def fine(monkeypatch):
    model = fine_model()
    monkeypatch.setattr("vqscope.zoo.load_model", lambda name=None: model)
    return model


def test_score_dimensions_json_and_table(capsys, fine, video_factory):
    video = video_factory("six_s.mp4", n=144, fps=24)
    assert main(["score", video, "--dimensions", "color,blur", "--json", "--no-progress"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert list(d["dimensions"]) == ["color", "blur"]
    assert all(list(c["dimensions"]) == ["color", "blur"] for c in d["clips"])
    assert "compression" not in d["distortions"] and d["distortions"]["motion_blur"] == pytest.approx(0.86)
    assert main(["score", video, "--dimensions", "blur", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "blur" in out and "motion blur likely" in out and "color" not in out


def test_score_dimensions_for_many_videos(capsys, fine, tmp_path, video_factory):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(video_factory("a.mp4", n=48, seed=1), folder / "a.mp4")
    shutil.copy(video_factory("b.mp4", n=30, seed=2), folder / "b.mp4")
    (folder / "broken.mp4").write_text("not a video")
    out = tmp_path / "scores.jsonl"
    assert main(["score", str(folder), "--dimensions", "noise", "--out", str(out), "--no-progress"]) == 3
    records = [json.loads(line) for line in out.read_text().splitlines()]
    ok = [r for r in records if r["status"] == "ok"]
    assert len(ok) == 2 and all(list(r["dimensions"]) == ["noise"] for r in ok)
    assert all(set(r["distortions"]) == {"noise"} for r in ok)
    assert [r["status"] for r in records].count("error") == 1


def test_score_dimensions_errors_are_one_line(capsys, monkeypatch, video_factory):
    video = video_factory("three_s.mp4", n=72, fps=24)
    model = tiny_model()
    monkeypatch.setattr("vqscope.zoo.load_model", lambda name=None: model)
    monkeypatch.setattr(model, "score", lambda *a, **k: pytest.fail("scored anyway"))
    assert main(["score", video, "--dimensions", "colr"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vqscope: error: unknown dimension 'colr'") and err.count("\n") == 1
    assert main(["score", video, "--dimensions", "color"]) == 2
    assert "does not predict the dimension(s) color (it predicts: overall)" in capsys.readouterr().err


# -- the service --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """A service whose model has every head; results are stored by hand (no workers run)."""
    root = tmp_path_factory.mktemp("svc")
    video = root / "v.mp4"
    video.write_bytes(b"\0" * 16)  # submission checks the path exists; nothing is decoded
    config = ServiceConfig(data_dir=root / "data", model=str(fine_model().save(root / "fine.safetensors")),
                           token=TOKEN, workers=1, path_roots=(root,))
    with TestClient(create_app(config, background=False)) as client:
        yield client, str(video)


def _finish(client, job_id, result):
    store = client.app.state.service.store
    job = store.claim("test-worker", 30)
    assert job is not None and job.id == job_id
    assert store.complete(job, result.to_dict())


def test_service_dimensions_on_submission_and_on_reading(service):
    client, video = service
    r = client.post("/api/jobs", json={"path": video, "dimensions": "blur,color"}, headers=AUTH)
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["options"] == {"dimensions": ["blur", "color"]}
    _finish(client, job["id"], fine_result())
    result = client.get(f"/api/jobs/{job['id']}/result").json()
    assert list(result["dimensions"]) == ["blur", "color"]
    assert all(list(c["dimensions"]) == ["blur", "color"] for c in result["clips"])
    assert list(client.get(f"/api/jobs/{job['id']}").json()["result"]["dimensions"]) == ["blur", "color"]
    # a reader may narrow (or widen) it again
    noise = client.get(f"/api/jobs/{job['id']}/result", params={"dimensions": "noise"}).json()
    assert list(noise["dimensions"]) == ["noise"] and set(noise["distortions"]) == {"noise"}
    bad = client.get(f"/api/jobs/{job['id']}/result", params={"dimensions": "colr"})
    assert bad.status_code == 422 and "unknown dimension 'colr'" in bad.json()["message"]


def test_service_refuses_unknown_dimensions_at_submission(service, tmp_path):
    client, video = service
    r = client.post("/api/jobs", json={"path": video, "dimensions": ["sharpness"]}, headers=AUTH)
    assert r.status_code == 422 and "unknown dimension 'sharpness'" in r.json()["message"]
    r = client.post("/api/jobs/upload", files={"file": ("a.mp4", b"\0" * 16)}, data={"dimensions": "colr"},
                    headers=AUTH)
    assert r.status_code == 422 and "did you mean 'color'" in r.text


def test_service_ask(service):
    client, video = service
    job = client.post("/api/jobs", json={"path": video}, headers=AUTH).json()
    assert client.get(f"/api/jobs/{job['id']}/ask", params={"q": "is it shaky?"}).status_code == 409
    _finish(client, job["id"], fine_result())
    a = client.get(f"/api/jobs/{job['id']}/ask", params={"q": "is there motion blur?"})
    assert a.status_code == 200, a.text
    assert (a.json()["answer"], a.json()["ranges"]) == ("yes", [{"start_s": 2.0, "end_s": 5.0}])
    listed = client.get(f"/api/jobs/{job['id']}/ask", params={"q": "which distortions?", "threshold": 0.8}).json()
    assert [i["distortion"] for i in listed["answer"]] == ["motion_blur"]
    bad = client.get(f"/api/jobs/{job['id']}/ask", params={"q": "hello?"})
    assert bad.status_code == 422 and bad.json()["error"] == "bad_configuration"
    assert client.get("/api/jobs/nope/ask", params={"q": "is it shaky?"}).status_code == 404


def test_a_single_head_service_refuses_dimensions_it_lacks(tmp_path):
    video = tmp_path / "v.mp4"
    video.write_bytes(b"\0" * 16)
    config = ServiceConfig(data_dir=tmp_path / "data", model=tiny_model_file(tmp_path), token=TOKEN, workers=1,
                           path_roots=(tmp_path,))
    with TestClient(create_app(config, background=False)) as client:
        r = client.post("/api/jobs", json={"path": str(video), "dimensions": "blur"}, headers=AUTH)
        assert r.status_code == 422 and r.json()["error"] == "not_predicted"
        assert "(it predicts: overall)" in r.json()["message"]
        assert client.post("/api/jobs", json={"path": str(video), "dimensions": "overall"},
                           headers=AUTH).status_code == 202


def test_a_model_file_with_every_head_end_to_end(capsys, tmp_path, video_factory):
    """No stand-ins: a saved model with six dimension heads and a distortion head, through the CLI."""
    from vqscope.features import FeatureConfig
    from vqscope.heads import HeadConfig, PredictionNetwork
    from vqscope.model import Model, ModelInfo
    from vqscope.taxonomy import DIMENSIONS, DISTORTION_TYPES

    features = FeatureConfig(spatial=("frame_stats",), temporal=("motion_stats",))
    network = PredictionNetwork(HeadConfig(in_dim=features.dim, hidden=(), heads=DIMENSIONS, primary="overall",
                                           distortions=DISTORTION_TYPES))
    path = str(Model(ModelInfo("all-heads", 1), features, network).save(tmp_path / "all.safetensors"))
    video = video_factory("three_s.mp4", n=72, fps=24)
    assert main(["score", video, "--model", path, "--dimensions", "temporal,overall", "--json", "--no-progress"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert list(d["dimensions"]) == ["temporal", "overall"] and len(d["distortions"]) == 12
    assert d["dimensions"]["temporal"]["description"].startswith("Temporal quality is ")
    assert all(list(c["dimensions"]) == ["temporal", "overall"] and len(c["distortions"]) == 12 for c in d["clips"])
    assert main(["ask", video, "is it shaky?", "--model", path, "--json", "--no-progress"]) == 0
    a = json.loads(capsys.readouterr().out)
    assert a["distortion"] == "jitter" and a["answer"] in ("yes", "no") and 0 <= a["probability"] <= 1
