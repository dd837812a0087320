"""ONNX export: the exported backbones and heads score like PyTorch, and a folder is tied to its model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime", reason="ONNX Runtime not installed (pip install 'vqscope[onnx]')")

from vqscope.calibration import Calibration  # noqa: E402
from vqscope.cli import main  # noqa: E402
from vqscope.errors import ModelFileError  # noqa: E402
from vqscope.export import export_onnx, use_onnx  # noqa: E402
from vqscope.features import FeatureConfig  # noqa: E402
from vqscope.heads import HeadConfig, PredictionNetwork  # noqa: E402
from vqscope.model import Model, ModelInfo  # noqa: E402


def small_model(seed: int) -> Model:
    """A real ImageNet backbone (installed offline) under a random head with two outputs."""
    torch.manual_seed(seed)
    features = FeatureConfig(spatial=("efficientnet_lite0_native", "frame_stats"), temporal=())
    network = PredictionNetwork(HeadConfig(in_dim=features.dim, hidden=(8,), heads=("overall", "other")))
    with torch.no_grad():
        for head in network.heads.values():
            head.bias.fill_(0.5)
            head.weight.mul_(0.2)
    info = ModelInfo(f"onnx-test-{seed}", 1, "test", training={"data": "none"}, card={"summary": "test"})
    return Model(info, features, network, Calibration.fit(np.linspace(20, 80, 50), "unit", "f" * 64))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx-models")
    return [str(small_model(s).save(folder / f"onnx-test-{s}-1.safetensors")) for s in (1, 2)]


def test_onnx_scores_match_pytorch(saved, tmp_path, video_factory):
    video = video_factory("onnx.mp4", n=60, height=120, width=160)
    reference = Model.load(saved[0]).score(video)
    out = export_onnx(Model.load(saved[0]), tmp_path / "export")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["heads"] == ["overall", "other"] and "efficientnet_lite0_native" in manifest["backbones"]
    onnx_model = use_onnx(Model.load(saved[0]), out)
    assert onnx_model.runtime == "onnx"
    assert not isinstance(onnx_model.extractor.backbone("efficientnet_lite0_native"), torch.nn.Module)
    result = onnx_model.score(video)
    assert len(result.clips) == len(reference.clips) >= 2
    assert result.score == pytest.approx(reference.score, abs=0.02)
    for a, b in zip(result.clips, reference.clips):
        assert a.score == pytest.approx(b.score, abs=0.02)
    # dynamic batch: several inputs at once give each one's own output
    batch = np.random.default_rng(0).normal(size=(5, manifest["in_dim"])).astype(np.float32)
    torch_heads = Model.load(saved[0]).predict(batch)
    onnx_heads = onnx_model.predict(batch)
    for head in ("overall", "other"):
        np.testing.assert_allclose(onnx_heads[head], torch_heads[head], atol=1e-3)


def test_an_export_is_refused_for_another_model(saved, tmp_path):
    out = export_onnx(Model.load(saved[0]), tmp_path / "export")
    with pytest.raises(ModelFileError, match="exported from"):
        use_onnx(Model.load(saved[1]), out)
    with pytest.raises(ModelFileError, match="manifest"):
        use_onnx(Model.load(saved[0]), tmp_path / "empty")


def test_cli_export_and_score_with_onnx(saved, tmp_path, video_factory, capsys):
    out = tmp_path / "cli-export"
    assert main(["export", "onnx", saved[0], "--out", str(out)]) == 0
    assert (out / "heads.onnx").is_file() and (out / "efficientnet_lite0_native.onnx").is_file()
    capsys.readouterr()
    video = video_factory("onnx.mp4", n=60, height=120, width=160)
    assert main(["score", video, "--model", saved[0], "--onnx-dir", str(out), "--json", "--no-progress"]) == 0
    onnx_score = json.loads(capsys.readouterr().out)["score"]
    assert main(["score", video, "--model", saved[0], "--json", "--no-progress"]) == 0
    assert onnx_score == pytest.approx(json.loads(capsys.readouterr().out)["score"], abs=0.02)
