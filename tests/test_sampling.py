"""The clip plan, and its application to a decoded stream."""

from __future__ import annotations

import pytest

from vqscope.sampling import ClipAssembler, ClipPlanConfig, plan_clips
from vqscope.video import VideoReader, probe


def test_one_clip_per_second():
    plan = plan_clips(10.0, 25.0)
    assert len(plan) == 10 and plan.total_clips == 10
    assert [c.start_s for c in plan.clips] == [float(i) for i in range(10)]
    assert plan.clips[-1].end_s == 10.0
    assert all(c.key_time_s == c.start_s for c in plan.clips)
    assert not plan.padded


def test_short_remainder_joins_last_clip_and_long_remainder_is_a_clip():
    assert len(plan_clips(8.1, 30.0)) == 8 and plan_clips(8.1, 30.0).clips[-1].end_s == pytest.approx(8.1)
    assert len(plan_clips(8.6, 30.0)) == 9


def test_windows_near_the_end_move_back_to_stay_whole():
    plan = plan_clips(8.6, 30.0)
    last = plan.clips[-1]
    assert last.start_s == 8.0
    assert last.window_start_s == pytest.approx(8.6 - 32 / 30.0)
    assert plan.clips[-2].window_start_s == 7.0  # windows that fit are not moved


def test_long_videos_keep_max_clips_spread_evenly():
    plan = plan_clips(300.0, 30.0, ClipPlanConfig(max_clips=32))
    starts = [c.start_s for c in plan.clips]
    assert len(starts) == 32 and plan.total_clips == 300
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert min(gaps) >= 9.0 and max(gaps) <= 10.0
    assert starts[0] < 10.0 and starts[-1] > 285.0


def test_very_short_video_is_one_padded_clip():
    plan = plan_clips(0.5, 24.0)
    assert len(plan) == 1 and plan.padded
    assert plan.clips[0].start_s == 0.0 and plan.clips[0].end_s == 0.5


def test_config_is_validated():
    with pytest.raises(ValueError):
        ClipPlanConfig(clip_seconds=0)
    with pytest.raises(ValueError):
        ClipPlanConfig(max_clips=0)


def _assemble(path, config=None):
    with VideoReader(path) as reader:
        plan = plan_clips(reader.info.duration_s, reader.info.fps, config)
        assembler = ClipAssembler(plan, lambda f: {"key": f.time_s}, lambda f: {"w": f.time_s})
        clips = list(assembler.run(reader))
        return plan, clips, reader.stats


def test_assembler_gives_key_frames_and_full_windows(video_factory):
    plan, clips, _ = _assemble(video_factory("three_s.mp4", n=72, fps=24))
    assert len(clips) == 3
    for clip in clips:
        assert clip.key["key"] == pytest.approx(clip.spec.key_time_s, abs=1e-6)
        assert len(clip.window["w"]) == 32 and not clip.padded
        times = clip.window["w"]
        assert all(b > a for a, b in zip(times, times[1:]))  # consecutive, in order
    assert clips[-1].window["w"][-1] == pytest.approx(71 / 24)


def test_assembler_pads_a_video_shorter_than_a_window(video_factory):
    plan, clips, _ = _assemble(video_factory("short.mp4", n=20, fps=24))
    assert plan.padded and len(clips) == 1
    clip = clips[0]
    assert clip.padded and len(clip.window["w"]) == 32
    assert clip.window["w"][19:] == [clip.window["w"][19]] * 13  # last frame repeated


def test_assembler_seeks_over_gaps_in_long_videos(video_factory):
    path = video_factory("twenty_s.mp4", n=240, fps=12, gop=12, height=36, width=64)
    plan, clips, stats = _assemble(path, ClipPlanConfig(max_clips=2))
    assert [round(c.spec.start_s) for c in clips] == [5, 15]
    for clip in clips:
        assert clip.key["key"] == pytest.approx(clip.spec.start_s, abs=0.5 / 12)
        assert len(clip.window["w"]) == 32 and not clip.padded
    assert stats.frames < 120  # the gaps before and between the clips were seeked over


def test_a_dropped_frame_of_a_variable_rate_file_is_held_in_the_window(tmp_path):
    """Frames dropped from a 25 fps recording (a variable-rate file on a 25 fps grid) are shown
    as the frame before held, as a player shows them: the window runs on the nominal grid, and a
    constant-rate file's window is its frames in order (the test above)."""
    from conftest import textured_frames
    from vqscope.data.encode import write_video

    dropped = {3, 4, 9, 15, 16, 17, 30}
    slots = [i for i in range(50) if i not in dropped]
    path = write_video(tmp_path / "dropped.mp4", textured_frames(len(slots), 72, 128), 25,
                       frame_times=[i / 25 for i in slots])
    info = probe(path)
    assert info.variable_frame_rate and info.nominal_fps == pytest.approx(25.0)
    assert info.fps < 25.0 and info.display_fps == pytest.approx(25.0)
    with VideoReader(path) as reader:
        plan = plan_clips(reader.info.duration_s, reader.info.display_fps)
        clips = list(ClipAssembler(plan, lambda f: {"key": f.time_s}, lambda f: {"w": f.time_s}).run(reader))
    shown = [round(t * 25) for t in clips[0].window["w"]]
    assert len(shown) == 32 and not clips[0].padded
    # slot k shows the last frame at or before k
    assert shown == [max(s for s in slots if s <= k) for k in range(32)]
