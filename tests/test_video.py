"""Probe and decode: geometry, timing, pixel formats, streaming."""

from __future__ import annotations

import numpy as np
import pytest

from vqscope.data.encode import write_video
from vqscope.video import VideoReader, probe
from conftest import textured_frames


def test_probe_reports_stream_properties(video_factory):
    info = probe(video_factory("basic.mp4", n=48, height=72, width=128, fps=24))
    assert (info.width, info.height) == (128, 72)
    assert info.fps == pytest.approx(24.0)
    assert info.duration_s == pytest.approx(2.0, abs=0.05)
    assert info.frame_count == 48
    assert info.codec == "h264"
    assert info.pix_fmt == "yuv420p" and info.bit_depth == 8
    assert info.rotation == 0 and not info.variable_frame_rate
    assert info.size_bytes > 0


def test_frames_are_streamed_in_order_with_times(video_factory):
    with VideoReader(video_factory("basic.mp4")) as reader:
        frames = reader.frames()
        first = next(frames)  # a generator: nothing is decoded ahead of need
        assert first.index == 0 and first.time_s == pytest.approx(0.0)
        times = [first.time_s] + [f.time_s for f in frames]
    assert len(times) == 48
    assert np.allclose(np.diff(times), 1 / 24, atol=1e-3)


def test_rotated_phone_video_is_shown_upright(tmp_path):
    frames = textured_frames(10, 72, 128)
    for f in frames:
        f[:12, :12] = (255, 0, 0)  # red mark in the stored top-left corner
    path = write_video(tmp_path / "rot.mp4", frames, 25, rotation=90, crf=10)
    info = probe(path)
    assert info.rotation == 90
    assert (info.width, info.height) == (72, 128)  # portrait on screen
    assert (info.coded_width, info.coded_height) == (128, 72)
    with VideoReader(path) as reader:
        frame = next(reader.frames())
        rgb = frame.rgb(72, 128)
        luma = frame.luma()
    assert rgb.shape == (128, 72, 3) and luma.shape == (128, 72)
    # Rotating 90 degrees counter-clockwise moves the stored top-left corner to bottom-left.
    assert rgb[-6, 6, 0] > 200 and rgb[-6, 6, 1] < 80
    assert not (rgb[6, 6, 0] > 200 and rgb[6, 6, 1] < 80)


def test_variable_frame_rate_keeps_real_timestamps(tmp_path):
    times = [0.0, 0.04, 0.08, 0.2, 0.25, 0.5, 0.52, 0.9, 1.0, 1.3, 1.34, 1.38]
    path = write_video(tmp_path / "vfr.mp4", textured_frames(len(times), 72, 128), 25, frame_times=times)
    with VideoReader(path) as reader:
        decoded = [round(f.time_s, 3) for f in reader.frames()]
    assert decoded == times


def test_ten_bit_hevc_decodes_to_eight_bit(tmp_path):
    path = write_video(tmp_path / "h10.mkv", textured_frames(12, 72, 128), 25, codec="libx265", pix_fmt="yuv420p10le")
    info = probe(path)
    assert info.bit_depth == 10 and info.codec == "hevc"
    with VideoReader(path) as reader:
        frame = next(reader.frames())
        luma, rgb, yuv = frame.luma(), frame.rgb(64, 36), frame.yuv_crop(64)
    assert luma.dtype == np.uint8 and 100 < luma.mean() < 160
    assert rgb.dtype == np.uint8 and rgb.shape == (36, 64, 3) and rgb.max() > 200
    assert yuv.dtype == np.uint8 and yuv.shape == (64, 64, 3)


def test_odd_frame_size_decodes(tmp_path):
    path = write_video(tmp_path / "odd.mkv", textured_frames(12, 71, 127), 25, pix_fmt="yuv444p")
    info = probe(path)
    assert (info.width, info.height) == (127, 71)
    with VideoReader(path) as reader:
        frame = next(reader.frames())
        assert frame.rgb(127, 71).shape == (71, 127, 3)
        assert frame.luma(step=2).shape == (36, 64)
        assert frame.yuv_crop(384).shape == (71, 127, 3)


def test_yuv_crop_is_full_range_and_matches_rgb(tmp_path):
    # A flat mid-grey picture: video-range Y 126 must come out near 128 full-range.
    grey = [np.full((64, 64, 3), 128, np.uint8)] * 4
    path = write_video(tmp_path / "grey.mp4", grey, 25, crf=0)
    with VideoReader(path) as reader:
        frame = next(reader.frames())
        yuv = frame.yuv_crop(32)
    assert yuv.shape == (32, 32, 3)
    assert abs(int(yuv[..., 0].mean()) - 128) <= 2
    assert abs(int(yuv[..., 1].mean()) - 128) <= 2 and abs(int(yuv[..., 2].mean()) - 128) <= 2


def test_seek_starts_at_requested_time(video_factory):
    path = video_factory("long.mp4", n=240, fps=24, gop=24)
    with VideoReader(path) as reader:
        first = next(reader.frames(start_s=6.0))
    assert first.time_s == pytest.approx(6.0, abs=0.5 / 24)


def test_the_first_pass_goes_on_from_probing_and_a_second_pass_starts_over(video_factory):
    import av

    path = video_factory("passes.mp4", n=40, height=72, width=96)
    with av.open(path) as container:
        expected = [f.to_ndarray(format="gray") for f in container.decode(video=0)]
    with VideoReader(path) as reader:
        first = [f.luma(1) for f in reader.frames()]
        second = [f.luma(1) for f in reader.frames()]
        later = [f.time_s for f in reader.frames(start_s=1.0)]
    assert len(first) == len(second) == len(expected) == 40
    # Every frame once, in order, the probed ones included: the same frames as a pass that
    # seeks back to the start (the second), and as many as PyAV decodes.
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    assert not np.array_equal(first[0], first[-1])  # a moving picture, so order is tested
    assert later and later[0] >= 1.0 - 1e-6
