"""ONNX export: the exported backbones and heads score like PyTorch, and a folder is tied to its model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime", reason="ONNX Runtime not installed (pip install 'vqscope[onnx]')")

from vqscope.backbones.registry import BackboneSpec, FrameInput, register  # noqa: E402
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


# -- statistics backbones: exported where ONNX expresses them, stated where it cannot -----------------
class _MeanStd(torch.nn.Module):
    """A weight-free statistics backbone ONNX can express: per-channel mean and spread."""

    def features(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.float().flatten(2)
        return torch.cat([flat.mean(dim=2), flat.std(dim=2)], dim=1)


class _Frozen(torch.nn.Module):
    """Traces without error, but `.item()` freezes the traced input's mean into the graph:
    the parity check must catch it."""

    def features(self, x: torch.Tensor) -> torch.Tensor:
        level = float(x.mean().item())
        return torch.stack([x.float().flatten(1).std(dim=1) * level, x.float().flatten(1).mean(dim=1)], dim=1)


_YUV = FrameInput(color="yuv", short_side=None, crop=384)
register(BackboneSpec(name="test_mean_std_stats", role="spatial", builder=_MeanStd, frame_input=_YUV,
                      feature_dim=6, description="test only"))
register(BackboneSpec(name="test_frozen_stats", role="spatial", builder=_Frozen, frame_input=_YUV,
                      feature_dim=2, description="test only"))


def stats_model(spatial: tuple[str, ...], temporal: tuple[str, ...] = ()) -> Model:
    torch.manual_seed(0)
    features = FeatureConfig(spatial=spatial, temporal=temporal)
    network = PredictionNetwork(HeadConfig(in_dim=features.dim, hidden=(8,)))
    with torch.no_grad():
        network.heads["overall"].bias.fill_(0.5)
        network.heads["overall"].weight.mul_(0.2)
    info = ModelInfo("stats-test", 1, "test", training={"data": "none"}, card={"summary": "test"})
    return Model(info, features, network, Calibration.fit(np.linspace(20, 80, 50), "unit", "f" * 64))


def test_an_expressible_statistics_backbone_is_exported_and_matches_pytorch(tmp_path, video_factory):
    path = stats_model(("test_mean_std_stats",)).save(tmp_path / "stats-test-1.safetensors")
    out = export_onnx(Model.load(path), tmp_path / "export", standalone=True)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["standalone"] is True and manifest["in_torch"] == {}
    assert manifest["statistics"] == {"test_mean_std_stats": "test_mean_std_stats.onnx"}
    assert manifest["layout"][0] == ["test_mean_std_stats", 6] and manifest["inputs"]["test_mean_std_stats"]["crop"] == 384
    onnx_model = use_onnx(Model.load(path), out)
    assert not isinstance(onnx_model.extractor.backbone("test_mean_std_stats"), torch.nn.Module)
    for video in (video_factory("onnx.mp4", n=60, height=120, width=160), video_factory("onnx_small.mp4", n=48)):
        reference, got = Model.load(path).score(video), onnx_model.score(video)  # two crop sizes
        assert got.score == pytest.approx(reference.score, abs=1e-3)
        for a, b in zip(got.clips, reference.clips):
            assert a.score == pytest.approx(b.score, abs=1e-3)


def test_a_traced_graph_that_froze_data_is_left_in_pytorch(tmp_path):
    out = export_onnx(stats_model(("test_frozen_stats",)), tmp_path / "export")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["standalone"] is False and manifest["statistics"] == {}
    assert "differs by up to" in manifest["in_torch"]["test_frozen_stats"]
    assert not (out / "test_frozen_stats.onnx").exists()


def test_shipped_statistics_backbones_are_stated_not_silently_left_out(tmp_path):
    model = stats_model(("frame_stats", "test_mean_std_stats"), ("motion_stats",))
    out = export_onnx(model, tmp_path / "export")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["standalone"] is False and set(manifest["in_torch"]) == {"frame_stats", "motion_stats"}
    assert "aten::diff" in manifest["in_torch"]["frame_stats"] and "aten::median" in manifest["in_torch"]["motion_stats"]
    assert manifest["statement"].startswith("not standalone: frame_stats, motion_stats of stats-test@1 cannot")
    assert manifest["statistics"] == {"test_mean_std_stats": "test_mean_std_stats.onnx"}  # the one that can, is


def test_cli_states_a_partial_export_and_refuses_a_standalone_one(tmp_path, capfd):
    path = str(stats_model(("frame_stats",), ("motion_stats",)).save(tmp_path / "stats-test-1.safetensors"))
    assert main(["export", "onnx", path, "--out", str(tmp_path / "partial")]) == 0
    out, err = capfd.readouterr()
    lines = out.strip().splitlines()
    assert lines[0].startswith("exported stats-test@1 to") and lines[1].startswith("not standalone: frame_stats, ")
    assert "Torch IR graph" not in out + err  # the exporter's own dump of a failed export is silenced
    assert main(["export", "onnx", path, "--out", str(tmp_path / "standalone"), "--standalone"]) == 25
    err = capfd.readouterr().err
    assert err.startswith("vqscope: error: stats-test@1 cannot be exported as a standalone ONNX model: frame_stats: ")
    assert err.count("\n") == 1 and not (tmp_path / "standalone").exists()
