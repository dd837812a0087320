"""The fine-grained heads: six dimensions and twelve distortion types through the whole path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vqscope.calibration import Calibration
from vqscope.features import FeatureConfig
from vqscope.heads import DISTORTION_PREFIX, HeadConfig, Part, PredictionNetwork
from vqscope.model import Model, ModelInfo, pool_clip_probabilities
from vqscope.taxonomy import DIMENSIONS, DISTORTION_TYPES
from vqscope.zoo import load_model


def fine_network(in_dim: int, gate: bool, distortion_bias: float, raw: float = 0.4) -> PredictionNetwork:
    torch.manual_seed(0)
    net = PredictionNetwork(HeadConfig(in_dim=in_dim, hidden=(), heads=DIMENSIONS + ("lab",), primary="overall",
                                       distortions=DISTORTION_TYPES,
                                       parts=(Part("detection_gate"),) if gate else ()))
    with torch.no_grad():
        for head in net.heads.values():
            head.weight.zero_()
            head.bias.fill_(raw)  # every raw score head says 100 * raw
        net.distortion_head.weight.zero_()
        net.distortion_head.bias.fill_(distortion_bias)
    return net.eval()


def test_the_gate_pulls_undetected_dimensions_to_100_and_leaves_dataset_heads_alone():
    x = torch.randn(3, 5)
    clean = fine_network(5, gate=True, distortion_bias=-30.0)(x)  # p ~ 0 for every type
    damaged = fine_network(5, gate=True, distortion_bias=30.0)(x)  # p ~ 1
    raw = fine_network(5, gate=False, distortion_bias=-30.0)(x)
    for d in DIMENSIONS:
        assert torch.allclose(clean[d], torch.full((3,), 100.0), atol=1e-3)
        assert torch.allclose(damaged[d], torch.full((3,), 40.0), atol=1e-3)
        assert torch.allclose(raw[d], torch.full((3,), 40.0), atol=1e-3)
    assert torch.allclose(clean["lab"], torch.full((3,), 40.0), atol=1e-3)  # not a taxonomy dimension
    assert set(clean) == set(DIMENSIONS) | {"lab"} | {DISTORTION_PREFIX + t for t in DISTORTION_TYPES}
    assert all(float(clean[DISTORTION_PREFIX + t].max()) < 1e-6 for t in DISTORTION_TYPES)


def test_video_probability_is_the_mean_of_the_top_third_of_clips():
    assert pool_clip_probabilities(np.array([0.9, 0.1, 0.1, 0.1, 0.1, 0.1])) == pytest.approx(0.5)
    assert pool_clip_probabilities(np.array([0.3])) == pytest.approx(0.3)
    assert pool_clip_probabilities(np.array([0.2, 0.8, 0.6])) == pytest.approx(0.8)


def test_a_fine_model_fills_dimensions_and_distortions_per_video_and_clip(video_factory, tmp_path):
    features = FeatureConfig(spatial=("frame_stats", "detail_stats"), temporal=("motion_stats",))
    info = ModelInfo("fine-test", 1, "test", training={"data": "none"}, card={"summary": "test"})
    model = Model(info, features, fine_network(features.dim, gate=True, distortion_bias=30.0, raw=0.3),
                  Calibration.fit(np.linspace(20, 80, 50), "unit", "f" * 64))
    path = model.save(tmp_path / "fine-test-1.safetensors")
    result = Model.load(path).score(video_factory("fine.mp4", n=75, height=96, width=128))
    assert list(result.dimensions) == list(DIMENSIONS)
    assert set(result.distortions) == set(DISTORTION_TYPES)
    assert all(p == pytest.approx(1.0, abs=1e-4) for p in result.distortions.values())
    assert result.score == pytest.approx(30.0, abs=0.01) and result.grade == "poor"
    for clip in result.clips:
        assert list(clip.dimensions) == list(DIMENSIONS) and set(clip.distortions) == set(DISTORTION_TYPES)
    assert result.dimensions["blur"].description  # each dimension is described


def test_the_default_model_is_fine_grained(video_factory):
    model = load_model()
    assert model.network.config.distortions == DISTORTION_TYPES
    assert set(DIMENSIONS) <= set(model.network.config.heads)
    assert model.info.card.get("evaluation", {}).get("types")  # the card carries per-type figures
    result = model.score(video_factory("default.mp4", n=60, height=120, width=160))
    assert set(result.dimensions) == set(DIMENSIONS) and set(result.distortions) == set(DISTORTION_TYPES)
    assert all(0.0 <= p <= 1.0 for p in result.distortions.values())
    assert all(0.0 <= d.score <= 100.0 for d in result.dimensions.values())


def test_onnx_export_keeps_the_gate_and_the_distortion_head(tmp_path):
    pytest.importorskip("onnxruntime", reason="ONNX Runtime not installed (pip install 'vqscope[onnx]')")
    from vqscope.export import export_onnx, use_onnx

    torch.manual_seed(1)
    features = FeatureConfig(spatial=("frame_stats",), temporal=("motion_stats",))
    net = PredictionNetwork(HeadConfig(in_dim=features.dim, hidden=(16,), heads=DIMENSIONS, primary="overall",
                                       distortions=DISTORTION_TYPES, parts=(Part("detection_gate"),))).eval()
    info = ModelInfo("fine-onnx", 1, "test", training={"data": "none"}, card={"summary": "test"})
    model = Model(info, features, net)
    path = model.save(tmp_path / "fine-onnx-1.safetensors")
    x = np.random.default_rng(0).normal(size=(7, features.dim)).astype(np.float32)
    expected = Model.load(path).predict(x)
    onnx_model = Model.load(path)
    use_onnx(onnx_model, export_onnx(onnx_model, tmp_path / "export"))
    got = onnx_model.predict(x)
    assert set(got) == set(expected)
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], atol=1e-3 if key in DIMENSIONS else 1e-5)


def test_non_finite_features_give_a_typed_error_not_a_nan_score(video_factory):
    from vqscope.errors import CorruptVideoError

    model = load_model()
    features = model.extractor.extract(video_factory("nan.mp4", n=30, height=72, width=96))
    assert model.result_from_features(features, "nan.mp4").score >= 0  # finite features score
    features.clips[0].vector[3] = np.nan
    with pytest.raises(CorruptVideoError, match="non-finite features"):
        model.result_from_features(features, "nan.mp4")
