"""Features -> heads -> calibration -> result, and the model file that holds it all."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vqscope.calibration import Calibration, GradeScale
from vqscope.errors import ModelFileError, ModelNotFoundError
from vqscope.features import FeatureConfig, FeatureExtractor
from vqscope.heads import HeadConfig, PredictionNetwork
from vqscope.model import Model, ModelInfo
from vqscope.result import Result
from vqscope.sampling import ClipPlanConfig
from vqscope.zoo import list_models, load_model, resolve_model_path

CONTRACT_KEYS = ["video", "model", "duration_s", "width", "height", "fps", "score", "scaled_score", "grade",
                 "dimensions", "distortions", "description", "clips"]


def tiny_model(seed: int = 0, name: str = "tiny", version: int = 1) -> Model:
    """A model with the weight-free backbones only (fast), and a random head."""
    torch.manual_seed(seed)
    features = FeatureConfig(spatial=("frame_stats",), temporal=("motion_stats",))
    network = PredictionNetwork(HeadConfig(in_dim=features.dim, hidden=(16,)))
    with torch.no_grad():  # put scores in the middle of the scale, spread but rarely clipped
        network.heads["overall"].bias.fill_(0.5)
        network.heads["overall"].weight.mul_(0.2)
    calibration = Calibration.fit(np.linspace(20, 80, 50), "unit-test set", "f" * 64)
    info = ModelInfo(name, version, "unit-test model", training={"data": "none"}, card={"summary": "test"})
    return Model(info, features, network, calibration)


def test_feature_vectors_have_the_configured_layout(video_factory):
    config = FeatureConfig(spatial=("frame_stats",), temporal=("motion_stats",))
    vf = FeatureExtractor(config).extract(video_factory("three_s.mp4", n=72, fps=24))
    assert [name for name, _ in config.layout] == ["frame_stats", "motion_stats", "video_meta"]
    assert vf.matrix.shape == (3, config.dim)
    assert np.isfinite(vf.matrix).all()
    assert vf.matrix[0, -3:] == pytest.approx([np.log2(72), np.log2(128), np.log2(24)])


def test_score_returns_the_result_contract(video_factory):
    model = tiny_model()
    result = model.score(video_factory("three_s.mp4", n=72, fps=24))
    d = result.to_dict()
    assert list(d)[: len(CONTRACT_KEYS)] == CONTRACT_KEYS
    assert d["model"] == "tiny@1" and (d["width"], d["height"]) == (128, 72)
    assert len(d["clips"]) == 3
    clip_scores = [c["score"] for c in d["clips"]]
    assert d["score"] == pytest.approx(np.mean(clip_scores), abs=0.01)  # video = mean of clips
    assert [c["start_s"] for c in d["clips"]] == [0.0, 1.0, 2.0]
    assert 0 <= d["scaled_score"] <= 100
    assert d["grade"] == GradeScale().grade(d["score"])
    assert set(d["dimensions"]) == {"overall"} and d["distortions"] == {}
    assert d["description"]
    assert Result.from_dict(json.loads(result.to_json())).to_dict() == d


def test_short_video_is_scored_and_flagged_padded(video_factory):
    result = tiny_model().score(video_factory("short.mp4", n=20, fps=24))
    assert result.padded and result.clips[0].padded and len(result.clips) == 1
    assert "padded" in result.description


def test_clip_options_change_the_plan(video_factory):
    path = video_factory("four_s.mp4", n=96, fps=24)
    model = tiny_model()
    assert len(model.score(path).clips) == 4
    assert len(model.score(path, max_clips=2).clips) == 2
    assert len(model.score(path, clip_seconds=2.0).clips) == 2


def test_model_file_round_trip(tmp_path, video_factory):
    model = tiny_model(seed=3)
    path = model.save(tmp_path / "tiny-1.safetensors")
    loaded = Model.load(path)
    assert loaded.id == "tiny@1"
    assert loaded.features == model.features
    assert loaded.calibration == model.calibration
    assert loaded.info.training == {"data": "none"}
    meta = loaded.metadata()
    assert meta["format"] == "vqscope-model" and meta["backbone_weights"]["frame_stats"]["weights"] is None
    video = video_factory("three_s.mp4", n=72, fps=24)
    assert loaded.score(video).score == pytest.approx(model.score(video).score, abs=1e-4)


def test_model_file_errors(tmp_path):
    with pytest.raises(ModelFileError):
        Model.load(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a model at all")
    with pytest.raises(ModelFileError):
        Model.load(junk)
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(other), metadata={"vqscope": json.dumps({"format": "something-else"})})
    with pytest.raises(ModelFileError):
        Model.load(other)


def test_head_must_fit_the_features():
    features = FeatureConfig(spatial=("frame_stats",), temporal=())
    with pytest.raises(ModelFileError):
        Model(ModelInfo("x", 1), features, PredictionNetwork(HeadConfig(in_dim=features.dim + 1)))


def test_shipped_models_are_listed_and_resolved():
    shipped = list_models()
    assert any(m.name == "vqscope-lite" for m in shipped)
    assert resolve_model_path("vqscope-lite") == resolve_model_path(f"vqscope-lite@{max(m.version for m in shipped if m.name == 'vqscope-lite')}")
    with pytest.raises(ModelNotFoundError):
        load_model("no-such-model")
    with pytest.raises(ModelNotFoundError):
        load_model("vqscope-lite@999")


def test_plan_config_from_model_is_used(video_factory):
    model = tiny_model()
    model.features = FeatureConfig(spatial=("frame_stats",), temporal=("motion_stats",),
                                   clip_plan=ClipPlanConfig(clip_seconds=0.5))
    model._extractor = None
    assert len(model.score(video_factory("three_s.mp4", n=72, fps=24)).clips) == 6
