"""Training data from real footage: distortions, full-reference targets, the corpus builder."""

from __future__ import annotations

import numpy as np
import pytest

from vqscope.data.corpus import LITE_TYPES, CorpusConfig, extract_corpus_features, recipes_for, render_corpus
from vqscope.data.distortions import TYPES, apply
from vqscope.data.fr_target import frame_targets, gmsd, luma_of_rgb, luma_of_video
from vqscope.data.encode import write_video
from vqscope.data.sources import Source, animate_photo
from vqscope.features import FeatureConfig
from conftest import textured_frames

RNG = np.random.default_rng(0)


def test_every_type_has_graded_levels_and_keeps_frame_count():
    frames = textured_frames(12, 72, 128)
    for name, t in TYPES.items():
        assert t.n_levels >= 4, name
        d = apply(frames, [(name, t.n_levels - 1)], np.random.default_rng(0))
        assert len(d.frames) == 12 and d.labels == [(name, t.n_levels - 1)]
        if name == "lowres":
            assert d.frames[0].shape[0] < 72
        else:
            assert d.frames[0].shape == (72, 128, 3)
    assert apply(frames, [("compression", 4)], RNG).crf == 50
    stutter = apply(frames, [("stutter", 1)], np.random.default_rng(0))
    assert stutter.shown is not None and len(set(stutter.shown)) <= 5  # every third frame shown
    assert all(np.array_equal(stutter.frames[i], frames[j]) for i, j in enumerate(stutter.shown))
    with pytest.raises(ValueError):
        apply(frames, [("defocus_blur", 9)], RNG)


def test_gmsd_is_zero_for_identical_pictures_and_grows_with_damage():
    frames = textured_frames(4, 96, 128)
    ref = luma_of_rgb(frames)
    assert gmsd(ref, ref).max().item() == pytest.approx(0.0, abs=1e-6)
    values = [gmsd(ref, luma_of_rgb(apply(frames, [("defocus_blur", lvl)], RNG).frames)).mean().item() for lvl in range(4)]
    assert all(a < b for a, b in zip(values, values[1:])) and values[-1] > 0.02  # sigma scales with height


@pytest.mark.parametrize("kind", ["compression", "noise", "defocus_blur", "scale", "stutter"])
def test_targets_fall_with_every_level(tmp_path, kind):
    frames = textured_frames(24, 96, 160, speed=4)
    ref = luma_of_rgb(frames)
    targets = []
    for level in range(TYPES[kind].n_levels):
        d = apply(frames, [(kind, level)], np.random.default_rng(1))
        path = write_video(tmp_path / f"{kind}{level}.mp4", d.frames, 24, crf=d.crf)
        dis, _ = luma_of_video(path, (96, 160))
        targets.append(frame_targets(ref, dis, d.shown)["target"].mean())
    assert all(a > b for a, b in zip(targets, targets[1:])), targets
    assert 0 <= targets[-1] < targets[0] <= 100


def test_targets_of_an_undistorted_copy_are_high_and_lowres_copies_are_compared_upscaled(tmp_path):
    frames = textured_frames(12, 96, 160)
    ref = luma_of_rgb(frames)
    clean = write_video(tmp_path / "clean.mp4", frames, 24, crf=10)
    dis, times = luma_of_video(clean, (96, 160))
    assert frame_targets(ref, dis)["target"].mean() > 85
    assert len(times) == 12
    small = apply(frames, [("lowres", 2)], RNG)
    path = write_video(tmp_path / "small.mp4", small.frames, 24, crf=10)
    dis_small, _ = luma_of_video(path, (96, 160))
    assert dis_small.shape == ref.shape
    assert frame_targets(ref, dis_small)["target"].mean() < 75


def test_recipes_cover_each_type_and_level_once():
    recipes = recipes_for(np.random.default_rng(0), combos=4)
    singles = [r for r in recipes if len(r) == 1]
    assert recipes[0] == ()
    assert len(singles) == sum(TYPES[name].n_levels for name in LITE_TYPES)
    assert len([r for r in recipes if len(r) == 2]) == 4 and len(set(recipes)) == len(recipes)


def test_animated_photo_moves_over_the_picture(tmp_path):
    from PIL import Image

    big = textured_frames(1, 400, 700)[0]
    Image.fromarray(big).save(tmp_path / "p.png")
    frames = animate_photo(str(tmp_path / "p.png"), 1.0, 10, np.random.default_rng(0))
    assert len(frames) == 10 and frames[0].shape[2] == 3
    assert not np.array_equal(frames[0], frames[-1])


def test_small_corpus_end_to_end(tmp_path, monkeypatch):
    """Render a few recipes of one generated source, resume, and turn them into clip data."""
    from PIL import Image
    import vqscope.data.corpus as corpus

    Image.fromarray(textured_frames(1, 300, 500)[0]).save(tmp_path / "photo.png")
    source = Source("test:photo", "photo", str(tmp_path / "photo.png"), "generated")
    picked = [(), (("compression", 4),), (("defocus_blur", 3),)]
    monkeypatch.setattr(corpus, "recipes_for", lambda rng, combos: picked)
    config = CorpusConfig(seconds=1.5)
    folder = tmp_path / "corpus"
    samples = render_corpus([source], folder, config, log=lambda m: None)
    assert len(samples) == 3
    again = render_corpus([source], folder, config, log=lambda m: None)  # resumes: nothing to do
    assert sorted(s.id for s in again) == sorted(s.id for s in samples)
    assert len((folder / "samples.jsonl").read_text().splitlines()) == 3

    config = FeatureConfig(spatial=("frame_stats",), temporal=("motion_stats",))
    clips = extract_corpus_features(folder, samples, config, log=lambda m: None)
    assert clips.features.shape[1] == config.dim
    assert clips.features.shape[0] == clips.targets.shape[0] == clips.sample_index.shape[0] >= 3
    by_recipe = {s.id.split("~")[-1]: s.video_target for s in samples}
    assert by_recipe["pristine"] > by_recipe["compression4"] and by_recipe["pristine"] > by_recipe["defocus_blur3"]
