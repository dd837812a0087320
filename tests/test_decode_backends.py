"""Decoder back-ends: the choice (auto/pyav/torchcodec/nvdec), its typed errors, and the
torchcodec reader's frames against PyAV's.

torchcodec cannot load on this CPU-only machine (its PyPI wheel links CUDA torch), so the
torchcodec module is replaced by a stand-in that decodes with PyAV and hands out what
torchcodec hands out: RGB uint8 tensors [N, 3, H, W] in display orientation, pts in seconds,
and stream metadata. Everything vqscope does with those tensors (frame times, seeking, resizing
with torch, luma and YUV crops from RGB, truncation checks, the extractor wiring) is the real
code under test. Where torchcodec itself loads, the last test runs it for real.
"""

from __future__ import annotations

import sys
import types

import av
import numpy as np
import pytest
import torch

from vqscope import decode_backends as db
from vqscope.cli import main
from vqscope.errors import ConfigError, RuntimeUnavailableError
from vqscope.features import FeatureConfig
from vqscope.features.extractor import FeatureExtractor
from vqscope.video import VideoReader


class _FakeMeta:
    def __init__(self, path: str):
        with av.open(path) as c:
            s = c.streams.video[0]
            self.num_frames = sum(1 for _ in c.decode(s))
            self.begin_stream_seconds = float((s.start_time or 0) * s.time_base)
        self.color_space = None  # untagged: BT.601, as torchcodec (and swscale) assume
        self.rotation = 0.0  # this field says frames come upright


class _FakeVideoDecoder:
    """torchcodec.decoders.VideoDecoder's surface, decoding with PyAV (exact seek mode)."""

    opened: list[dict] = []

    def __init__(self, source, *, device="cpu", dimension_order="NCHW", seek_mode="exact", num_ffmpeg_threads=1):
        assert dimension_order == "NCHW"
        self.opened.append({"device": device, "seek_mode": seek_mode})
        self.metadata = _FakeMeta(source)
        self._frames = []
        with av.open(source) as c:
            for f in c.decode(c.streams.video[0]):
                rgb = f.to_ndarray(format="rgb24")
                k = int(round((f.rotation or 0) / 90.0)) % 4
                self._frames.append((np.ascontiguousarray(np.rot90(rgb, k)), float(f.pts * f.time_base)))
        self.calls: list[tuple[int, int]] = []

    def get_frames_in_range(self, start: int, stop: int, step: int = 1):
        self.calls.append((start, stop))
        chosen = self._frames[start:stop:step]
        data = torch.from_numpy(np.stack([f for f, _ in chosen])).permute(0, 3, 1, 2)
        return types.SimpleNamespace(data=data, pts_seconds=torch.tensor([t for _, t in chosen], dtype=torch.float64))


@pytest.fixture
def fake_torchcodec(monkeypatch):
    package = types.ModuleType("torchcodec")
    decoders = types.ModuleType("torchcodec.decoders")
    decoders.VideoDecoder = _FakeVideoDecoder
    package.decoders = decoders
    monkeypatch.setitem(sys.modules, "torchcodec", package)
    monkeypatch.setitem(sys.modules, "torchcodec.decoders", decoders)
    _FakeVideoDecoder.opened = []
    return decoders


@pytest.fixture
def no_torchcodec(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchcodec", None)  # import raises ImportError
    monkeypatch.setitem(sys.modules, "torchcodec.decoders", None)


# -- the choice -----------------------------------------------------------------------------------
def test_pyav_is_the_default_without_a_gpu(monkeypatch, fake_torchcodec):
    monkeypatch.setattr(db, "_cuda_available", lambda: False)
    assert db.resolve_decoder("auto") == ("pyav", "cpu")
    assert db.resolve_decoder(None) == ("pyav", "cpu")
    assert db.resolve_decoder("pyav") == ("pyav", "cpu")
    assert db.resolve_decoder("torchcodec") == ("torchcodec", "cpu")
    # the library (feature caches, training) decodes with PyAV whatever the machine
    extractor = FeatureExtractor(FeatureConfig(spatial=("frame_stats",), temporal=()))
    assert extractor.decoder == "pyav"


def test_auto_takes_the_gpu_only_with_cuda_and_torchcodec(monkeypatch, fake_torchcodec):
    monkeypatch.setattr(db, "_cuda_available", lambda: True)
    assert db.resolve_decoder("auto") == ("torchcodec", "cuda")
    assert db.resolve_decoder("nvdec") == ("torchcodec", "cuda")
    assert db.resolve_decoder("torchcodec") == ("torchcodec", "cuda")
    assert db.resolve_decoder("pyav") == ("pyav", "cpu")


def test_auto_falls_back_to_pyav_when_torchcodec_is_missing(monkeypatch, no_torchcodec):
    monkeypatch.setattr(db, "_cuda_available", lambda: True)
    assert db.resolve_decoder("auto") == ("pyav", "cpu")
    with pytest.raises(RuntimeUnavailableError, match="pip install torchcodec"):
        db.resolve_decoder("torchcodec")


def test_torchcodec_that_fails_to_load_is_a_typed_error(monkeypatch):
    def broken(name):
        raise OSError("libnvrtc.so.13: cannot open shared object file\nmore")

    monkeypatch.setattr(db.importlib, "import_module", broken)
    with pytest.raises(RuntimeUnavailableError, match="does not load .libnvrtc.so.13") as info:
        db.resolve_decoder("torchcodec")
    assert "\n" not in info.value.message
    monkeypatch.setattr(db, "_cuda_available", lambda: True)
    assert db.resolve_decoder("auto") == ("pyav", "cpu")


def test_nvdec_without_cuda_and_unknown_names_are_errors(monkeypatch, fake_torchcodec):
    monkeypatch.setattr(db, "_cuda_available", lambda: False)
    with pytest.raises(RuntimeUnavailableError, match="needs a CUDA GPU"):
        db.resolve_decoder("nvdec")
    with pytest.raises(ConfigError, match="unknown decoder"):
        db.resolve_decoder("ffmpeg-gpu")


def test_cli_requested_but_missing_decoder_is_one_line_exit_25(video_factory, no_torchcodec, capsys):
    video = video_factory("dec.mp4", n=30)
    for name in ("torchcodec", "nvdec"):
        assert main(["score", video, "--decoder", name, "--no-progress"]) == 25
        err = capsys.readouterr().err
        assert err.startswith("vqscope: error: ") and err.count("\n") == 1 and "Traceback" not in err
        assert "pip install torchcodec" in err


def test_cli_gpu_decoder_refuses_worker_processes(video_factory, fake_torchcodec, capsys):
    a, b = video_factory("w1.mp4", n=30), video_factory("w2.mp4", n=30, seed=1)
    assert main(["score", a, b, "--decoder", "torchcodec", "--workers", "2", "--no-progress"]) == 2
    assert "--workers" in capsys.readouterr().err


# -- the torchcodec reader against PyAV ------------------------------------------------------------
def _pyav_frames(path, start_s=0.0):
    with VideoReader(path) as reader:
        return [(f.time_s, f.rgb(*f.display_size), f.rgb(64, 36), f.luma(1), f.luma(2), f.yuv_crop(32))
                for f in reader.frames(start_s)]


def _torchcodec_frames(path, start_s=0.0, chunk=5):
    with db.TorchcodecReader(path, device="cpu", chunk=chunk) as reader:
        out = [(f.time_s, f.rgb(*f.display_size), f.rgb(64, 36), f.luma(1), f.luma(2), f.yuv_crop(32))
               for f in reader.frames(start_s)]
        return out, reader


def _diff(a, b):
    return np.abs(a.astype(np.int16) - b.astype(np.int16))


def test_torchcodec_frames_match_pyav(video_factory, fake_torchcodec):
    path = video_factory("tc.mp4", n=40, height=72, width=128)
    ref = _pyav_frames(path)
    got, reader = _torchcodec_frames(path)
    assert len(got) == len(ref) == 40 and reader.stats.frames == 40 and reader.stats.reached_end
    assert _FakeVideoDecoder.opened[-1] == {"device": "cpu", "seek_mode": "exact"}
    for (t0, full0, small0, y0, y20, yuv0), (t1, full1, small1, y1, y21, yuv1) in zip(ref, got):
        assert t1 == pytest.approx(t0, abs=1e-6)
        assert full1.shape == full0.shape == (72, 128, 3) and full1.dtype == np.uint8
        assert _diff(full1, full0).max() == 0  # same RGB, no resize: identical
        assert small1.shape == small0.shape == (36, 64, 3)
        assert _diff(small1, small0).mean() < 6.0  # torch antialiased bilinear vs swscale "area", on noise
        assert y1.shape == y0.shape and y21.shape == y20.shape == (36, 64)
        assert _diff(y1, y0).mean() < 1.5 and np.percentile(_diff(y1, y0), 99) <= 4  # RGB round trip
        assert yuv1.shape == yuv0.shape == (32, 32, 3)
        assert _diff(yuv1, yuv0).mean() < 3.0


def test_torchcodec_seek_starts_where_pyav_does(video_factory, fake_torchcodec):
    path = video_factory("tc_seek.mp4", n=72, fps=24)
    ref = [t for t, *_ in _pyav_frames(path, start_s=1.5)]
    got, _ = _torchcodec_frames(path, start_s=1.5, chunk=4)
    assert [t for t, *_ in got] == pytest.approx(ref, abs=1e-6)
    assert got[0][0] >= 1.5 - 0.5 / 24
    decoder_calls = _FakeVideoDecoder.opened  # one decoder, chunks of 4 from about a second early
    assert len(decoder_calls) == 1


def test_torchcodec_rotated_video_is_upright(tmp_path, fake_torchcodec):
    from conftest import textured_frames

    from vqscope.data.encode import write_video

    path = write_video(tmp_path / "rot.mp4", textured_frames(24, 64, 96), 24, rotation=90, crf=10)
    ref = _pyav_frames(path)
    got, _ = _torchcodec_frames(path)
    assert got[0][1].shape == ref[0][1].shape == (96, 64, 3)
    assert _diff(got[0][1], ref[0][1]).max() == 0
    assert got[0][3].shape == ref[0][3].shape == (96, 64)


def test_extractor_scores_close_with_either_decoder(video_factory, fake_torchcodec):
    config = FeatureConfig(spatial=("frame_stats",), temporal=("motion_stats",))
    extractor = FeatureExtractor(config)
    path = video_factory("tc_features.mp4", n=60, height=90, width=160)
    ref = extractor.extract(path)
    extractor.decoder = ("torchcodec", "cpu")
    got = extractor.extract(path)
    assert len(got.clips) == len(ref.clips) >= 2
    assert [c.key_time_s for c in got.clips] == pytest.approx([c.key_time_s for c in ref.clips])
    a, b = ref.matrix, got.matrix
    scale = np.abs(a).max(axis=0) + 1e-3
    assert np.median(np.abs(a - b) / scale) < 0.02  # statistics features agree to a few percent


def test_real_torchcodec_against_pyav(video_factory):
    try:
        db._import_torchcodec()
    except RuntimeUnavailableError as exc:
        pytest.skip(f"torchcodec does not load here: {exc.message}")
    path = video_factory("tc_real.mp4", n=30)
    ref = _pyav_frames(path)
    with db.TorchcodecReader(path, device="cpu") as reader:
        got = [(f.time_s, f.rgb(*f.display_size)) for f in reader.frames()]
    assert len(got) == len(ref)
    assert np.mean([_diff(g[1], r[1]).mean() for g, r in zip(got, ref)]) < 2.0


def test_cli_score_with_torchcodec_decoder(video_factory, fake_torchcodec, capsys):
    import json

    # Above the statistics' 224-pixel crops. The GPU path has RGB only and computes the YUV
    # planes the statistics read back from it, so the default model's scores agree to about a
    # point, not exactly (smaller videos are upscaled, by swscale or by torch, and differ more;
    # see docs/performance.md).
    video = video_factory("tc_cli.mp4", n=50, height=240, width=320)
    assert main(["score", video, "--json", "--no-progress"]) == 0
    reference = json.loads(capsys.readouterr().out)
    assert main(["score", video, "--decoder", "torchcodec", "--json", "--no-progress"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert _FakeVideoDecoder.opened and _FakeVideoDecoder.opened[-1]["device"] == "cpu"
    assert len(result["clips"]) == len(reference["clips"])
    assert result["score"] == pytest.approx(reference["score"], abs=1.5)
