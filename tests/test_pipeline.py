"""Batch scoring: decode_video + FeatureExtractor.features_of give what extract gives, and the
ScoringPipeline gives what Model.score gives, with typed errors for bad files."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from test_model import tiny_model
from vqscope.errors import CorruptVideoError, InputNotFoundError, NotAVideoError, VQScopeError
from vqscope.features import DecodedVideo, FeatureConfig, FeatureExtractor, decode_video
from pipeline_support import CrashOnSquare
from vqscope.features.pipeline import ScoringPipeline
from vqscope.result import Result
from vqscope.sampling import ClipPlanConfig

# The default model's backbones (EfficientNet-Lite0 on a native crop, frame and motion
# statistics): the batched path must agree with the per-clip path for the one that ships.
DEFAULT = FeatureConfig()
FAST = FeatureConfig(spatial=("frame_stats",), temporal=("motion_stats",))


@pytest.fixture(scope="module")
def extractor():
    return FeatureExtractor(DEFAULT)


@pytest.fixture
def videos(video_factory):
    """Two videos of different sizes and lengths (different input shapes, clip counts)."""
    return [
        video_factory("p_three_s.mp4", n=72, height=72, width=128, fps=24, seed=3),
        video_factory("p_wide.mp4", n=60, height=96, width=160, fps=25, seed=4),
    ]


def test_decode_video_holds_a_clip_per_planned_clip_and_pickles(videos):
    decoded = decode_video(videos[0], DEFAULT)
    assert isinstance(decoded, DecodedVideo)
    assert decoded.path == videos[0] and decoded.info.width == 128
    assert [c.spec.index for c in decoded.clips] == list(range(len(decoded.plan))) == [0, 1, 2]
    clip = decoded.clips[0]
    assert set(clip.key) == {"efficientnet_lite0_native", "frame_stats"} and set(clip.window) == {"motion_stats"}
    assert len(clip.window["motion_stats"]) == 32 and clip.key["efficientnet_lite0_native"].shape == (224, 224, 3)
    back = pickle.loads(pickle.dumps(decoded))
    assert np.array_equal(back.clips[2].key["frame_stats"], decoded.clips[2].key["frame_stats"])
    assert back.clips[1].window["motion_stats"][5].shape == clip.window["motion_stats"][5].shape


def test_features_of_matches_extract_for_one_video(extractor, videos):
    expected = extractor.extract(videos[0])
    (got,) = extractor.features_of([decode_video(videos[0], DEFAULT)])
    assert got.matrix.shape == expected.matrix.shape == (3, DEFAULT.dim)
    np.testing.assert_allclose(got.matrix, expected.matrix, atol=1e-4, rtol=0)
    assert [c.key_time_s for c in got.clips] == [c.key_time_s for c in expected.clips]
    assert got.warnings == expected.warnings and got.plan == expected.plan


def test_features_of_batches_two_videos_like_two_extracts(extractor, videos):
    decoded = [decode_video(p, DEFAULT) for p in videos]
    extractor.batch_size = 2  # several batches, one of them mixing the two videos' shapes
    try:
        got = extractor.features_of(decoded)
    finally:
        extractor.batch_size = 16
    assert len(got) == 2
    for vf, path in zip(got, videos):
        expected = extractor.extract(path)
        assert vf.info.path == path
        np.testing.assert_allclose(vf.matrix, expected.matrix, atol=1e-4, rtol=0)


def test_features_of_respects_a_plan_config(video_factory):
    path = video_factory("p_five_s.mp4", n=120, fps=24, seed=5)
    plan = ClipPlanConfig(max_clips=2, clip_seconds=2.0)
    extractor = FeatureExtractor(FAST)
    (got,) = extractor.features_of([decode_video(path, FAST, plan)])
    expected = extractor.extract(path, plan)
    assert len(got.clips) == 2
    np.testing.assert_allclose(got.matrix, expected.matrix, atol=1e-4, rtol=0)


def test_decode_video_raises_typed_errors(tmp_path):
    with pytest.raises(InputNotFoundError):
        decode_video(tmp_path / "missing.mp4", FAST)
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(NotAVideoError):
        decode_video(text, FAST)


def test_features_of_refuses_a_video_without_clips(videos):
    decoded = decode_video(videos[0], FAST)
    decoded.clips = []
    with pytest.raises(CorruptVideoError):
        FeatureExtractor(FAST).features_of([decoded])


# -- the scoring pipeline --------------------------------------------------------------------
@pytest.fixture(scope="module")
def model():
    return tiny_model(seed=3)


@pytest.fixture
def batch(video_factory, tmp_path):
    """Five videos of three shapes, a text file posing as a video, and a missing file."""
    good = [
        video_factory("s_a.mp4", n=48, seed=11),
        video_factory("s_b.mp4", n=72, fps=24, seed=12),
        video_factory("s_c.mp4", n=30, height=96, width=160, seed=13),  # shorter than a window: padded
        video_factory("s_d.mp4", n=50, height=64, width=64, fps=25, seed=14),
        video_factory("s_e.mp4", n=60, seed=15),
    ]
    bad = tmp_path / "fake.mp4"
    bad.write_text("not a video")
    return good, [str(bad), str(tmp_path / "gone.mp4")]


class Recording:
    """Stands in for a backbone like an ONNX runner does: records the batch size of each call."""

    def __init__(self, module):
        self.module = module
        self.calls: list[int] = []

    def features(self, x):
        self.calls.append(int(x.shape[0]))
        return self.module.features(x)


def test_pipeline_scores_like_model_score_and_types_errors(model, batch):
    good, bad = batch
    expected = {p: model.score(p) for p in good}
    with ScoringPipeline(model, decode_workers=2, max_in_flight=3, batch_clips=6) as pipeline:
        out = dict(pipeline.score(good + bad))
        assert pipeline.peak_in_flight <= 3
    assert set(out) == set(good + bad)
    for path in good:
        got = out[path]
        assert isinstance(got, Result) and got.video == path
        assert got.score == pytest.approx(expected[path].score, abs=1e-4)
        assert [c.score for c in got.clips] == pytest.approx([c.score for c in expected[path].clips], abs=1e-4)
        assert got.padded == expected[path].padded and got.elapsed_s > 0
    assert isinstance(out[bad[0]], NotAVideoError) and isinstance(out[bad[1]], InputNotFoundError)
    assert all(isinstance(out[p], VQScopeError) for p in bad)


def test_pipeline_batches_clips_of_several_videos_through_replaced_backbones(model, batch):
    good, _ = batch
    same_shape = [good[0], good[1], good[4]]  # 128x72: one input shape, 2 + 3 + 3 clips
    reference = {p: model.score(p) for p in same_shape}
    expected = {p: r.score for p, r in reference.items()}
    clips = [len(r.clips) for r in reference.values()]
    stand_in = Recording(model.extractor.backbone("frame_stats"))
    original = model.extractor.backbone("frame_stats")
    model.extractor.replace_backbone("frame_stats", stand_in)
    try:
        with ScoringPipeline(model, decode_workers=1, batch_clips=7) as pipeline:
            out = dict(pipeline.score(same_shape))
    finally:
        model.extractor.replace_backbone("frame_stats", original)
    assert sum(stand_in.calls) == sum(clips) == 8
    assert max(stand_in.calls) > max(clips)  # one call held clips of several videos
    for path, score in expected.items():
        assert out[path].score == pytest.approx(score, abs=1e-4)


def test_pipeline_applies_clip_options_and_checks_settings(model, batch):
    good, _ = batch
    with ScoringPipeline(model, decode_workers=1, max_clips=1) as pipeline:
        ((path, result),) = list(pipeline.score(good[1:2]))
    assert len(result.clips) == 1 and result.score == pytest.approx(model.score(path, max_clips=1).score, abs=1e-4)
    with pytest.raises(VQScopeError):
        ScoringPipeline(model, decode_workers=0)


def test_decode_workers_start_without_torch(model):
    """Decode workers import no torch (over a second of start-up each, on every cold run)."""
    with ScoringPipeline(model, decode_workers=1) as pipeline:
        pool = pipeline._ensure_pool()
        assert pool.submit(eval, "'torch' in __import__('sys').modules").result() is False
        assert pool.submit(eval, "__import__('vqscope.features.pipeline') and 'torch' in __import__('sys').modules").result() is False


def test_cli_workers_with_onnx_runtime_match_torch(tmp_path, capsys, model, batch):
    """`vqscope score MANY --workers 2 --runtime onnx` goes through the pipeline with ONNX heads."""
    pytest.importorskip("onnxruntime", reason="ONNX Runtime not installed (pip install 'vqscope[onnx]')")
    import json

    from vqscope.cli import main
    from vqscope.export import export_onnx

    good, bad = batch
    model_file = model.save(tmp_path / "tiny-3.safetensors")
    export_onnx(model, tmp_path / "onnx")
    out = tmp_path / "scores.jsonl"
    args = ["score", *good[:3], bad[0], "--model", str(model_file), "--workers", "2", "--out", str(out), "--no-progress"]
    assert main([*args, "--onnx-dir", str(tmp_path / "onnx")]) == 3  # the fake video is recorded, not fatal
    capsys.readouterr()
    records = {r["video"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert records[bad[0]]["status"] == "error" and records[bad[0]]["error"] == "not_a_video"
    for path in good[:3]:
        assert records[path]["status"] == "ok"
        assert records[path]["score"] == pytest.approx(model.score(path).score, abs=0.02)


def test_a_dead_decode_worker_costs_only_its_own_video(model, batch):
    good, _ = batch
    square = good[3]  # 64x64
    with ScoringPipeline(model, decode_workers=2) as pipeline:
        pipeline.preparer = CrashOnSquare(pipeline.preparer.spatial, pipeline.preparer.temporal,
                                          pipeline.preparer.inputs)
        out = dict(pipeline.score(good))
    assert set(out) == set(good)
    assert isinstance(out[square], CorruptVideoError) and "crashed" in out[square].message
    for path in good:
        if path != square:
            assert isinstance(out[path], Result), (path, out[path])
