"""The feature cache: extracted once, keyed by content and settings, filled in parallel."""

from __future__ import annotations

import shutil

import numpy as np

from vqscope.features import FeatureConfig
from vqscope.features.cache import FeatureCache, config_key, fill_cache

FAST = FeatureConfig(spatial=("frame_stats",), temporal=("motion_stats",))


def test_fill_get_and_resume(tmp_path, video_factory):
    a = video_factory("a.mp4", n=48, seed=1)
    b = video_factory("b.mp4", n=30, seed=2)
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    cache = FeatureCache(tmp_path / "cache", FAST)
    report = fill_cache([a, b, str(bad)], cache)
    assert (report.extracted, report.cached) == (2, 0)
    assert list(report.failed) == [str(bad)] and report.failed[str(bad)].startswith("not_a_video")
    got = cache.get(a)
    assert got is not None and got.features.shape == (2, FAST.dim) and got.spans.shape == (2, 3)
    assert got.info["width"] == 128

    again = fill_cache([a, b], cache)
    assert (again.extracted, again.cached) == (0, 2)

    renamed = tmp_path / "renamed.mp4"  # same content, new name: no new extraction
    shutil.copy(a, renamed)
    assert np.array_equal(cache.get(renamed).features, got.features)


def test_settings_are_part_of_the_key(tmp_path, video_factory):
    other = FeatureConfig(spatial=("frame_stats",), temporal=())
    assert config_key(other) != config_key(FAST)
    fill_cache([video_factory("a.mp4", n=48, seed=1)], FeatureCache(tmp_path, FAST))
    assert FeatureCache(tmp_path, other).get(video_factory("a.mp4", n=48, seed=1)) is None


def test_parallel_workers_give_the_same_features(tmp_path, video_factory):
    paths = [video_factory(f"v{i}.mp4", n=30, seed=10 + i) for i in range(3)]
    serial = FeatureCache(tmp_path / "serial", FAST)
    fill_cache(paths, serial, workers=1)
    parallel = FeatureCache(tmp_path / "parallel", FAST)
    progress = []
    report = fill_cache(paths, parallel, workers=2, on_progress=lambda d, t: progress.append((d, t)))
    assert report.extracted == 3 and progress[-1] == (3, 3)
    for p in paths:
        assert np.allclose(serial.get(p).features, parallel.get(p).features, atol=1e-5)


def test_a_new_backbone_version_is_a_new_cache_key(monkeypatch):
    import dataclasses

    from vqscope.backbones import registry
    from vqscope.features.cache import config_key

    config = FeatureConfig(spatial=("frame_stats",), temporal=("motion_stats",))
    before = config_key(config)
    assert config_key(config) == before  # stable
    bumped = dataclasses.replace(registry.get_backbone_spec("frame_stats"), version=2)
    monkeypatch.setitem(registry._REGISTRY, "frame_stats", bumped)
    assert config_key(config) != before


def test_a_backbone_reading_another_picture_is_a_new_cache_key(monkeypatch):
    import dataclasses

    from vqscope.backbones import registry
    from vqscope.features.cache import config_key

    config = FeatureConfig(spatial=("frame_stats",), temporal=("motion_stats",))
    before = config_key(config)
    spec = registry.get_backbone_spec("frame_stats")
    wider = dataclasses.replace(spec, frame_input=dataclasses.replace(spec.frame_input, crop=512))
    monkeypatch.setitem(registry._REGISTRY, "frame_stats", wider)
    assert config_key(config) != before
    monkeypatch.setitem(registry._REGISTRY, "frame_stats", spec)
    assert config_key(config) == before
