"""`vqscope synth`: the twelve graded distortions, the recipes, the labels and the corpus builder.

Everything runs on tiny generated pictures and videos (no media files): the distortion tests
measure one property per type on a few frames, the corpus tests render two small sources once
per configuration (module-scoped fixtures)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vqscope.cli import main
from vqscope.data.distortions import TRANSPARENT_CRF, TYPES, Step, apply, quality_loss, span_frames
from vqscope.data.encode import write_video
from vqscope.data.sources import Source
from vqscope.errors import ConfigError
from vqscope.data.synth import (
    LOCALISABLE,
    SynthConfig,
    clip_keep,
    clip_labels,
    dimension_targets,
    frame_levels,
    mixes_for,
    read_samples,
    recipe_id,
    recipes_for,
    sample_recipes,
    source_split,
    sources_from_paths,
    synthesize,
)
from vqscope.taxonomy import DIMENSIONS, DISTORTION_DIMENSION, DISTORTION_TYPES, types_of
from vqscope.video import iter_frames, probe
from conftest import textured_frames

LUMA = np.array([0.299, 0.587, 0.114])


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def luma(frame: np.ndarray) -> np.ndarray:
    return frame.astype(np.float64) @ LUMA


def levels_of(name: str) -> range:
    return range(TYPES[name].n_levels)


def distort(frames, name: str, level: int, seed: int = 0) -> list[np.ndarray]:
    return apply(frames, [(name, level)], rng(seed)).frames


def increasing(values) -> bool:
    return all(a < b for a, b in zip(values, values[1:]))


def decreasing(values) -> bool:
    return all(a > b for a, b in zip(values, values[1:]))


def laplacian_energy(frame: np.ndarray) -> float:
    y = luma(frame)
    lap = 4 * y[1:-1, 1:-1] - y[:-2, 1:-1] - y[2:, 1:-1] - y[1:-1, :-2] - y[1:-1, 2:]
    return float(np.mean(lap**2))


# (dy, dx) of a neighbour: along rows, along columns, and the two diagonals
DIRECTIONS = {"horizontal": (0, 1), "vertical": (1, 0), "diagonal": (1, 1), "antidiagonal": (1, -1)}
ACROSS = {"horizontal": "vertical", "vertical": "horizontal", "diagonal": "antidiagonal", "antidiagonal": "diagonal"}


def gradient_energy(frame: np.ndarray, dy: int, dx: int) -> float:
    """Mean squared difference of luma between each pixel and its (dy, dx) neighbour."""
    y = luma(frame)
    h, w = y.shape
    a = y[0 : h - dy, max(0, -dx) : w - max(0, dx)]
    b = y[dy:h, max(0, dx) : w - max(0, -dx)]
    return float(np.mean((a - b) ** 2))


def global_shift(a: np.ndarray, b: np.ndarray) -> float:
    """Length of the global translation between two frames (phase correlation, whole pixels)."""
    fa, fb = np.fft.fft2(luma(a)), np.fft.fft2(luma(b))
    cross = fa * np.conj(fb)
    corr = np.real(np.fft.ifft2(cross / (np.abs(cross) + 1e-9)))
    peak = np.unravel_index(np.argmax(corr), corr.shape)
    dy, dx = (p if p <= s // 2 else p - s for p, s in zip(peak, corr.shape))
    return float(np.hypot(dy, dx))


def mean_consecutive_shift(frames) -> float:
    return float(np.mean([global_shift(a, b) for a, b in zip(frames, frames[1:])]))


# --- each type does what its name says, more so at higher levels ----------------------------


@pytest.fixture(scope="module")
def still():
    """Three frames of a panning textured scene, 144 lines."""
    return textured_frames(3, 144, 192)


def test_overexposure_brightens_and_blows_out_highlights(still):
    def clipped(f):
        return float(np.mean(np.all(f == 255, axis=-1)))  # blown out to pure white

    means = [luma(still[0]).mean()] + [luma(distort(still, "overexposure", k)[0]).mean() for k in levels_of("overexposure")]
    white = [clipped(still[0])] + [clipped(distort(still, "overexposure", k)[0]) for k in levels_of("overexposure")]
    assert increasing(means), means
    assert increasing(white), white
    assert white[-1] > 0.2 and means[-1] - means[0] > 60


def test_underexposure_darkens(still):
    means = [luma(still[0]).mean()] + [luma(distort(still, "underexposure", k)[0]).mean() for k in levels_of("underexposure")]
    assert decreasing(means), means
    assert means[-1] < 0.5 * means[0]


def test_color_cast_moves_channel_balance_or_saturation(still):
    def balance(f):
        m = f.reshape(-1, 3).astype(np.float64).mean(axis=0)
        return m / m.sum()

    def saturation(f):
        x = f.astype(np.float64)
        return float(np.abs(x - luma(f)[..., None]).mean())

    src = still[0]
    kinds = set()
    for seed in range(8):  # the cast (tint or saturation, which way) is drawn from the rng
        outs = [distort(still[:1], "color_cast", k, seed)[0] for k in levels_of("color_cast")]
        shifts = [float(np.abs(balance(o) - balance(src)).max()) for o in outs]
        sat = [float(np.log(saturation(o) / saturation(src))) for o in outs]
        if shifts[-1] > 0.02:  # a tint: the channels drift apart
            kinds.add("tint")
            assert increasing(shifts) and shifts[0] > 0.005, (seed, shifts)
        else:  # washed out or oversaturated, white balance kept
            kinds.add("more saturated" if sat[-1] > 0 else "less saturated")
            assert increasing(np.abs(sat)) and abs(sat[0]) > 0.05, (seed, sat)
            assert all(np.sign(s) == np.sign(sat[-1]) for s in sat)
            # luma is kept: only the colour moved
            assert all(abs(luma(o).mean() - luma(src).mean()) < 1.0 for o in outs)
    assert kinds == {"tint", "more saturated", "less saturated"}, kinds


def test_noise_raises_high_frequency_energy_and_changes_every_frame(still):
    energy = [laplacian_energy(still[0])] + [laplacian_energy(distort(still, "noise", k)[0]) for k in levels_of("noise")]
    assert increasing(energy), energy
    assert energy[-1] > 3 * energy[0]
    out = distort(still, "noise", 1)
    residuals = [o.astype(np.int16) - s.astype(np.int16) for o, s in zip(out, still)]
    assert not np.array_equal(residuals[0], residuals[1])  # new noise in every frame
    assert abs(float(np.mean(residuals[0]))) < 1.0  # zero-mean: brightness kept


def test_compression_sets_the_encoder_crf_only(tmp_path, still):
    crfs, sizes = [], []
    for k in levels_of("compression"):
        d = apply(still, [("compression", k)], rng())
        assert all(np.array_equal(a, b) for a, b in zip(d.frames, still))  # pixels untouched
        crfs.append(d.crf)
        path = write_video(tmp_path / f"c{k}.mp4", d.frames, 25, crf=d.crf)
        sizes.append(Path(path).stat().st_size)
    assert crfs == [int(v) for v in TYPES["compression"].levels]
    assert crfs[0] > TRANSPARENT_CRF and increasing(crfs)
    assert decreasing(sizes), sizes  # the encoder really throws more away
    assert apply(still, [("noise", 0)], rng()).crf == TRANSPARENT_CRF
    # with another step the strongest setting wins, whatever the order given
    assert apply(still, [("compression", 3), ("noise", 0)], rng()).crf == crfs[3]


def test_mosaic_makes_flat_blocks_that_grow_with_level():
    frame = textured_frames(1, 360, 480)  # 360 lines: block sides 3, 5, 8, 13 pixels

    def equal_neighbours(f):
        return float(np.mean(np.all(f[:, 1:] == f[:, :-1], axis=-1))), float(np.mean(np.all(f[1:] == f[:-1], axis=-1)))

    base = equal_neighbours(frame[0])
    shares = [equal_neighbours(distort(frame, "mosaic", k)[0]) for k in levels_of("mosaic")]
    assert max(base) < 0.05
    for axis in (0, 1):
        values = [s[axis] for s in shares]
        assert increasing(values) and values[0] > 0.6, values
    # level 0 at 360 lines: every 3x3 block is one colour
    side = int(round(TYPES["mosaic"].levels[0] * 360 / 720))
    out = distort(frame, "mosaic", 0)[0]
    blocks = out.reshape(360 // side, side, 480 // side, side, 3)
    assert (blocks == blocks[:, :1, :, :1]).all()


def test_oversharpening_raises_laplacian_energy(still):
    energy = [laplacian_energy(still[0])] + [laplacian_energy(distort(still, "oversharpening", k)[0])
                                             for k in levels_of("oversharpening")]
    assert increasing(energy), energy
    assert energy[-1] > 3 * energy[0]


def test_defocus_blur_lowers_gradient_energy(still):
    energy = [laplacian_energy(still[0])] + [laplacian_energy(distort(still, "defocus_blur", k)[0])
                                             for k in levels_of("defocus_blur")]
    grads = [gradient_energy(still[0], 0, 1)] + [gradient_energy(distort(still, "defocus_blur", k)[0], 0, 1)
                                                 for k in levels_of("defocus_blur")]
    assert decreasing(energy), energy
    assert decreasing(grads), grads
    assert energy[-1] < 0.1 * energy[0]


def test_motion_blur_lowers_gradients_along_its_direction_more_than_across():
    # an isotropic texture, so that a direction stands out only through the blur
    noise = np.clip(rng(1).normal(128, 40, size=(240, 320, 3)), 0, 255).astype(np.uint8)
    frames = [noise, noise]
    before = {d: gradient_energy(noise, *v) for d, v in DIRECTIONS.items()}
    seen = set()
    for seed in range(6):  # the direction is drawn from the rng: mostly horizontal
        along_by_level = []
        for k in levels_of("motion_blur"):
            out = distort(frames, "motion_blur", k, seed)[0]
            ratio = {d: gradient_energy(out, *v) / before[d] for d, v in DIRECTIONS.items()}
            along = min(ratio, key=ratio.get)
            assert ratio[along] < 0.6 * ratio[ACROSS[along]], (seed, k, ratio)
            assert max(ratio.values()) < 1.0  # softer in every direction, most along the motion
            if along_by_level:
                assert along == along_by_level[-1][0]  # the direction depends on the rng, not the level
            along_by_level.append((along, ratio[along]))
        seen.add(along_by_level[0][0])
        assert decreasing([r for _, r in along_by_level]), along_by_level
    assert "horizontal" in seen and len(seen) >= 2, seen


def test_stutter_repeats_earlier_frames_and_more_so_at_higher_levels():
    frames = textured_frames(24, 72, 96)  # panning: every source frame differs
    assert len({f.tobytes() for f in frames}) == 24
    distinct = []
    for k in levels_of("stutter"):
        d = apply(frames, [("stutter", k)], rng())
        assert len(d.frames) == 24 and d.shown is not None
        assert all(np.array_equal(f, frames[j]) for f, j in zip(d.frames, d.shown))
        assert all(j <= i for i, j in enumerate(d.shown))  # a held frame, never one from the future
        hold = int(TYPES["stutter"].levels[k])
        runs = Counter(d.shown)
        assert max(runs.values()) == hold  # each shown frame held `hold` times (ends may be shorter)
        distinct.append(len({f.tobytes() for f in d.frames}))
    assert decreasing(distinct), distinct


def test_jitter_moves_the_picture_between_frames():
    frames = textured_frames(10, 240, 320, speed=0)  # a still camera
    assert mean_consecutive_shift(frames) == 0.0
    shifts = [mean_consecutive_shift(distort(frames, "jitter", k)) for k in levels_of("jitter")]
    assert shifts[0] > 0.5, shifts
    assert increasing(shifts), shifts


def test_flicker_raises_frame_to_frame_brightness_variation():
    frames = textured_frames(16, 72, 96, speed=0)

    def variation(fs):
        return float(np.std(np.diff([luma(f).mean() for f in fs])))

    assert variation(frames) == 0.0
    values = [variation(distort(frames, "flicker", k)) for k in levels_of("flicker")]
    assert values[0] > 1.0 and increasing(values), values


# --- apply: confinement in time and bad levels ---------------------------------------------


@pytest.mark.parametrize("name", LOCALISABLE)
def test_a_confined_step_changes_only_the_frames_inside_its_span(name):
    frames = textured_frames(16, 96, 128)
    step = Step(name, TYPES[name].n_levels - 1, 0.25, 0.75)
    lo, hi = span_frames(step, len(frames))
    assert (lo, hi) == (4, 12)
    d = apply(frames, [step], rng(3))
    assert len(d.frames) == 16 and d.labels == [(name, step.level)]
    changed = [not np.array_equal(a, b) for a, b in zip(d.frames, frames)]
    assert not any(changed[:lo]) and not any(changed[hi:]), changed
    if name == "stutter":
        assert any(changed[lo:hi])  # held frames; the first of a hold is the source frame itself
        assert d.shown[:lo] == list(range(lo)) and d.shown[hi:] == list(range(hi, 16))
    else:
        assert all(changed[lo:hi]), changed
        assert d.shown is None


def test_confined_step_with_a_whole_video_step_keeps_both():
    frames = textured_frames(16, 72, 96)
    d = apply(frames, [Step("noise", 3, 0.5, 1.0), Step("underexposure", 3)], rng())
    alone = apply(frames, [Step("underexposure", 3)], rng()).frames
    assert all(np.array_equal(a, b) for a, b in zip(d.frames[:8], alone[:8]))  # noise only in the second half
    assert all(not np.array_equal(a, b) for a, b in zip(d.frames[8:], alone[8:]))


@pytest.mark.parametrize("name", ["compression", "scale", "lowres"])
def test_encoder_and_resolution_steps_cannot_be_confined(name, still):
    with pytest.raises(ValueError, match="confined"):
        apply(still, [Step(name, 0, 0.2, 0.6)], rng())


@pytest.mark.parametrize("name", DISTORTION_TYPES)
def test_a_level_out_of_range_is_refused(name, still):
    n = TYPES[name].n_levels
    assert n >= 4
    for level in (n, -1):
        with pytest.raises(ValueError, match=name):
            apply(still, [(name, level)], rng())


# --- recipes ----------------------------------------------------------------------------


ALL_SINGLES = {(name, level) for name in DISTORTION_TYPES for level in levels_of(name)}


@pytest.mark.parametrize("seed", range(4))
def test_recipes_cover_every_type_and_level_once_then_pairs_and_triples(seed):
    config = SynthConfig(pairs=15, triples=9, seed=seed)
    recipes = recipes_for(rng(seed), config)
    assert recipes[0] == ()
    singles = [r for r in recipes if len(r) == 1]
    assert Counter((r[0].name, r[0].level) for r in singles) == Counter(ALL_SINGLES)
    assert len([r for r in recipes if len(r) == 2]) == 15
    assert len([r for r in recipes if len(r) == 3]) == 9
    assert len(recipes) == 1 + len(ALL_SINGLES) + 15 + 9
    assert len(set(recipes)) == len(recipes)
    assert len({recipe_id(r) for r in recipes}) == len(recipes)  # ids name samples: unique too
    for recipe in recipes:
        names = [s.name for s in recipe]
        assert len(set(names)) == len(names)
        assert not {"overexposure", "underexposure"} <= set(names)
        for s in recipe:
            assert 0 <= s.level < TYPES[s.name].n_levels
            if s.whole:
                assert (s.start, s.end) == (0.0, 1.0)
            else:
                assert len(recipe) == 1 and s.name in LOCALISABLE
                assert 0.0 < s.start < s.end < 1.0


def test_recipes_are_deterministic_and_the_localised_share_is_honoured():
    config = SynthConfig(pairs=6, triples=4)
    assert recipes_for(rng(7), config) == recipes_for(rng(7), config)
    assert recipes_for(rng(7), config) != recipes_for(rng(8), config)
    none = recipes_for(rng(0), SynthConfig(pairs=0, triples=0, localised_share=0.0))
    assert len(none) == 1 + len(ALL_SINGLES) and all(s.whole for r in none for s in r)
    every = recipes_for(rng(0), SynthConfig(pairs=0, triples=0, localised_share=1.0))
    for (step,) in every[1:]:
        assert step.whole == (step.name not in LOCALISABLE), step
    some = recipes_for(rng(0), SynthConfig(pairs=0, triples=0))
    confined = sum(not r[0].whole for r in some[1:])
    assert 0 < confined < len(some) - 1


def test_never_both_exposures_even_when_asked_for_many_pairs():
    recipes = recipes_for(rng(1), SynthConfig(pairs=200, triples=100))
    combos = [r for r in recipes if len(r) > 1]
    assert len(combos) == 300 and len(set(combos)) == 300
    assert not any({"overexposure", "underexposure"} <= {s.name for s in r} for r in combos)
    # pairs still reach every type
    assert {s.name for r in combos for s in r} == set(DISTORTION_TYPES)


def test_graded_mixes_damage_each_dimension_independently_at_most_once():
    config = SynthConfig(mixes=3000, mix_share=0.5)
    mixes = mixes_for(rng(2), config)
    assert len(mixes) == 3000 and mixes == mixes_for(rng(2), config)
    damaged = Counter()
    for recipe in mixes:
        dims = [DISTORTION_DIMENSION[s.name] for s in recipe]
        assert len(set(dims)) == len(dims)  # one type a dimension at most: never both exposures
        assert all(s.whole and 0 <= s.level < TYPES[s.name].n_levels for s in recipe)
        damaged.update(dims)
    for dim in DIMENSIONS[:-1]:
        assert damaged[dim] / len(mixes) == pytest.approx(0.5, abs=0.04), dim
    # every type and level of every dimension turns up; the number of damaged dimensions
    # is binomial (5, 0.5): some mixes are clean, some damage all five
    assert {(s.name, s.level) for r in mixes for s in r} == ALL_SINGLES
    sizes = Counter(len(r) for r in mixes)
    assert set(sizes) == set(range(6)) and sizes[0] == pytest.approx(3000 / 32, rel=0.35)
    assert all(len(r) == 5 for r in mixes_for(rng(2), SynthConfig(mixes=20, mix_share=1.0)))
    assert all(r == () for r in mixes_for(rng(2), SynthConfig(mixes=20, mix_share=0.0)))


def test_asking_for_mixes_leaves_the_catalogue_as_it_was():
    source = Source("clipA", "video", "unused.mp4", "test")
    plain = sample_recipes(source, 0, SynthConfig(pairs=4, triples=2))
    more = sample_recipes(source, 0, SynthConfig(pairs=4, triples=2, mixes=6))
    assert more[: len(plain)] == plain and len(more) == len(plain) + 6
    assert [name for name, _ in plain] == [recipe_id(r) for _, r in plain]
    mix_names = [name for name, _ in more[len(plain):]]
    assert mix_names == [f"mix{i}-{recipe_id(r)}" for i, (_, r) in enumerate(more[len(plain):])]
    assert len({name for name, _ in more}) == len(more)  # a mix never takes a catalogue sample's name
    assert sample_recipes(source, 1, SynthConfig(mixes=6))[-6:] != more[-6:]  # per segment


# --- labels: frame levels, dimension targets, clip labels ---------------------------------


def targets_of(recipe, n=20):
    return dimension_targets(frame_levels(tuple(recipe), n))


def test_pristine_targets_are_100_everywhere():
    levels = frame_levels((), 30)
    assert levels.shape == (30, len(DISTORTION_TYPES)) and not levels.any()
    targets = dimension_targets(levels)
    assert set(targets) == set(DIMENSIONS)
    for values in targets.values():
        assert values.shape == (30,) and np.all(values == 100.0)


@pytest.mark.parametrize("name", DISTORTION_TYPES)
def test_a_type_lowers_only_its_own_dimension_and_overall(name):
    n = TYPES[name].n_levels
    own = DISTORTION_DIMENSION[name]
    by_level = []
    for level in range(n):
        levels = frame_levels((Step(name, level),), 20)
        assert np.all(levels[:, DISTORTION_TYPES.index(name)] == level + 1)
        assert np.count_nonzero(levels) == 20
        targets = dimension_targets(levels)
        expected = 100.0 * (1.0 - quality_loss(level, n))
        for dim, values in targets.items():
            if dim in (own, "overall"):
                assert np.allclose(values, expected), (dim, values[0], expected)
            else:
                assert np.all(values == 100.0), dim
        by_level.append(float(targets[own][0]))
    assert decreasing(by_level) and 0 < by_level[-1] < by_level[0] < 100


def test_two_types_of_one_dimension_lower_it_more_than_either_alone():
    for a, b in [("defocus_blur", "motion_blur"), ("stutter", "flicker"), ("overexposure", "color_cast")]:
        dim = DISTORTION_DIMENSION[a]
        assert DISTORTION_DIMENSION[b] == dim
        both = targets_of([Step(a, 1), Step(b, 2)])
        alone_a, alone_b = targets_of([Step(a, 1)]), targets_of([Step(b, 2)])
        assert both[dim][0] < min(alone_a[dim][0], alone_b[dim][0])
        assert both[dim][0] == pytest.approx(alone_a[dim][0] * alone_b[dim][0] / 100.0)
        assert both["overall"][0] < min(alone_a["overall"][0], alone_b["overall"][0])
    # across dimensions: each keeps its own, overall takes both
    mixed = targets_of([Step("noise", 2), Step("mosaic", 0)])
    assert mixed["noise"][0] == pytest.approx(targets_of([Step("noise", 2)])["noise"][0])
    assert mixed["artifact"][0] == pytest.approx(targets_of([Step("mosaic", 0)])["artifact"][0])
    assert mixed["overall"][0] == pytest.approx(mixed["noise"][0] * mixed["artifact"][0] / 100.0)
    assert mixed["blur"][0] == mixed["color"][0] == mixed["temporal"][0] == 100.0


def test_a_confined_step_affects_only_the_frames_inside_its_span():
    step = Step("jitter", 2, 0.3, 0.7)
    levels = frame_levels((step,), 50)
    lo, hi = span_frames(step, 50)
    assert (lo, hi) == (15, 35)
    column = levels[:, DISTORTION_TYPES.index("jitter")]
    assert np.all(column[lo:hi] == 3) and not column[:lo].any() and not column[hi:].any()
    targets = dimension_targets(levels)
    for dim in ("temporal", "overall"):
        assert np.all(targets[dim][:lo] == 100.0) and np.all(targets[dim][hi:] == 100.0)
        assert np.all(targets[dim][lo:hi] < 100.0)
    assert np.all(targets["blur"] == 100.0)


def test_clip_labels_give_presence_shares_that_match_the_span():
    fps, n = 25.0, 50
    times = np.arange(n) / fps
    step = Step("flicker", 2, 0.3, 0.7)  # frames 15..34: 0.6 s to 1.4 s
    levels = frame_levels((step,), n)
    spans = np.array([[0.0, 1.0, 0.5], [1.0, 2.0, 1.5], [0.6, 1.4, 1.0], [1.5, 2.0, 1.75], [0.4, 0.8, 0.6]])
    dims, presence = clip_labels(times, levels, spans)
    assert dims.shape == (5, len(DIMENSIONS)) and presence.shape == (5, len(DISTORTION_TYPES))
    assert np.all((presence >= 0) & (presence <= 1))
    j = DISTORTION_TYPES.index("flicker")
    assert np.all(np.delete(presence, j, axis=1) == 0)
    for (start, end, _), share in zip(spans, presence[:, j]):
        overlap = max(0.0, min(end, step.end * n / fps) - max(start, step.start * n / fps)) / (end - start)
        assert share == pytest.approx(overlap, abs=1.0 / 25 + 1e-9), (start, end, share, overlap)
    assert presence[2, j] == 1.0 and presence[3, j] == 0.0
    assert presence[0, j] == pytest.approx(10 / 25) and presence[4, j] == pytest.approx(5 / 10)
    temporal, overall = DIMENSIONS.index("temporal"), DIMENSIONS.index("overall")
    hit = 100.0 * (1 - quality_loss(2, TYPES["flicker"].n_levels))
    assert dims[2, temporal] == pytest.approx(hit) and dims[3, temporal] == 100.0
    assert dims[0, temporal] == pytest.approx(100 - (100 - hit) * 10 / 25)
    assert dims[0, overall] == pytest.approx(dims[0, temporal])
    assert np.all(dims[:, DIMENSIONS.index("color")] == 100.0)
    # a clip past the last frame takes the frame nearest its key time
    late_dims, late_presence = clip_labels(times, levels, np.array([[2.5, 3.0, 2.75]]))
    assert late_presence[0, j] == 0.0 and np.all(late_dims == 100.0)
    # what a severity head learns: the share of quality each type leaves, over the same spans
    keep = clip_keep(times, levels, spans)
    assert keep.shape == (5, len(DISTORTION_TYPES)) and np.all(np.delete(keep, j, axis=1) == 1.0)
    assert keep[2, j] == pytest.approx(hit / 100) and keep[3, j] == 1.0
    assert keep[0, j] == pytest.approx(dims[0, temporal] / 100)  # one type: the dimension is its keep


# --- the corpus builder --------------------------------------------------------------------


CONFIG = SynthConfig(seconds=0.7, pairs=3, triples=2, test_share=0.0, val_share=0.0, holdout=("clipA",), seed=3)
N_RECIPES = 1 + len(ALL_SINGLES) + 3 + 2


@pytest.fixture(scope="module")
def source_files(tmp_path_factory):
    """A 1.2 s 160x120 video and a 192x144 photograph."""
    folder = tmp_path_factory.mktemp("sources")
    write_video(folder / "clipA.mp4", textured_frames(30, 120, 160, speed=2), 25)
    Image.fromarray(textured_frames(1, 144, 192, seed=5)[0]).save(folder / "photoB.png")
    return folder


@pytest.fixture(scope="module")
def corpus(source_files, tmp_path_factory):
    sources = sources_from_paths([source_files / "clipA.mp4", source_files / "photoB.png"])
    folder = tmp_path_factory.mktemp("corpus")
    log: list[str] = []
    samples = synthesize(sources, folder, CONFIG, log=log.append)
    return sources, folder, samples, log


def test_sources_from_paths_names_and_kinds(source_files, tmp_path):
    sources = sources_from_paths([source_files])
    assert [(s.name, s.kind) for s in sources] == [("clipA", "video"), ("photoB", "photo")]
    with pytest.raises(FileNotFoundError):
        sources_from_paths([tmp_path / "missing.mp4"])


def test_synthesize_renders_every_recipe_of_every_source(corpus):
    sources, folder, samples, log = corpus
    assert len(samples) == N_RECIPES * len(sources) == 2 * N_RECIPES
    assert len({s.id for s in samples}) == len(samples)
    assert log[0].startswith(f"synth: {len(samples)} samples to render")
    assert log[-1] == f"synth: {len(samples)}/{len(samples)} rendered"
    assert json.loads((folder / "config.json").read_text())["seed"] == CONFIG.seed
    assert len((folder / "samples.jsonl").read_text().splitlines()) == len(samples)
    by_source = Counter(s.source for s in samples)
    assert by_source == {"clipA": N_RECIPES, "photoB": N_RECIPES}
    for s in samples:
        assert (folder / s.video).is_file() and (folder / s.labels).is_file()
        assert s.id.startswith(f"{s.source}~0~")
        assert s.fps == 25.0 and s.frames == round(CONFIG.seconds * 25)
        assert s.width % 2 == 0 and s.height % 2 == 0
        assert s.seconds_to_build >= 0
    clip = [s for s in samples if s.source == "clipA"]
    assert {(s.width, s.height) for s in clip} == {(160, 120)}
    photo = [s for s in samples if s.source == "photoB"]
    assert len({(s.width, s.height) for s in photo}) == 1  # one animated view per photo
    assert max(photo[0].width, photo[0].height) <= 192


def test_synthesized_labels_match_the_recipe(corpus):
    _, folder, samples, _ = corpus
    kinds = Counter(len(s.recipe) for s in samples)
    assert kinds == {0: 2, 1: 2 * len(ALL_SINGLES), 2: 2 * 3, 3: 2 * 2}
    assert any(s.recipe and s.recipe[0]["start"] > 0 for s in samples)  # some confined samples
    for s in samples:
        recipe = tuple(Step(**r) for r in s.recipe)
        assert recipe_id(recipe) == s.id.split("~")[-1]
        labels = np.load(folder / s.labels)
        assert labels["times"].shape == (s.frames,) and labels["levels"].shape == (s.frames, len(DISTORTION_TYPES))
        assert np.allclose(labels["times"], np.arange(s.frames) / s.fps)
        assert np.array_equal(labels["levels"], frame_levels(recipe, s.frames))
        names = {r.name: r.level for r in recipe}
        assert set(s.presence) == set(s.severity) == set(DISTORTION_TYPES)
        for t in DISTORTION_TYPES:
            assert s.presence[t] == int(t in names)
            expected = (names[t] + 1) / TYPES[t].n_levels if t in names else 0.0
            assert s.severity[t] == pytest.approx(expected, abs=1e-3)
        targets = dimension_targets(labels["levels"])
        assert list(s.dimensions) == list(DIMENSIONS)
        for dim in DIMENSIONS:
            assert s.dimensions[dim] == pytest.approx(float(targets[dim].mean()), abs=1e-3)
            touched = any(DISTORTION_DIMENSION[t] == dim or dim == "overall" for t in names)
            assert (s.dimensions[dim] < 100.0) == touched, (s.id, dim)


def test_synthesized_videos_decode_to_the_recorded_size_and_length(corpus):
    _, folder, samples, _ = corpus
    picks = [s for s in samples if not s.recipe][:1]
    picks += [s for s in samples if s.recipe and s.recipe[0]["name"] == "compression"][:1]
    picks += [s for s in samples if len(s.recipe) == 3][:1]
    for s in picks:
        info = probe(folder / s.video)
        assert (info.width, info.height) == (s.width, s.height)
        assert info.fps == pytest.approx(s.fps)
        assert abs(info.frame_count - s.frames) <= 1


def test_a_confined_sample_differs_from_the_pristine_one_only_inside_its_labelled_frames(corpus):
    """End to end: the rendered video and its per-frame labels agree on *when*."""
    _, folder, samples, _ = corpus
    clear = {"overexposure", "underexposure", "color_cast", "mosaic", "motion_blur", "jitter", "flicker"}

    def decode(s):
        return [f.rgb(s.width, s.height).astype(np.float64) for f in iter_frames(folder / s.video)]

    pristine = decode(next(s for s in samples if s.source == "clipA" and not s.recipe))
    checked = 0
    for s in samples:
        if s.source != "clipA" or len(s.recipe) != 1 or s.recipe[0]["start"] <= 0 or s.recipe[0]["name"] not in clear:
            continue
        frames = decode(s)
        assert len(frames) == s.frames == len(pristine)
        inside = np.load(folder / s.labels)["levels"].any(axis=1)
        assert inside.any() and not inside.all()
        diff = np.array([np.abs(a - b).mean() for a, b in zip(frames, pristine)])
        assert diff[inside].min() > diff[~inside].max(), (s.id, diff.round(1), inside)
        checked += 1
    assert checked >= 3


def test_named_holdout_puts_every_sample_of_that_source_in_test(corpus):
    _, _, samples, _ = corpus
    assert {s.split for s in samples if s.source == "clipA"} == {"test"}
    assert {s.split for s in samples if s.source == "photoB"} == {"train"}  # no hash share asked
    assert source_split("clipA", CONFIG) == "test" and source_split("photoB", CONFIG) == "train"
    wild = SynthConfig(test_share=0.0, val_share=0.0, holdout=("clip*",))
    assert source_split("clipZ", wild) == "test" and source_split("photoB", wild) == "train"


def test_a_rerun_in_the_same_folder_renders_nothing_new(corpus):
    sources, folder, samples, _ = corpus
    lines = len((folder / "samples.jsonl").read_text().splitlines())
    log: list[str] = []
    again = synthesize(sources, folder, CONFIG, log=log.append)
    assert log == []
    assert len((folder / "samples.jsonl").read_text().splitlines()) == lines
    assert sorted(s.id for s in again) == sorted(s.id for s in samples)


def test_an_interrupted_build_finishes_only_what_is_missing(corpus, tmp_path):
    sources, folder, samples, _ = corpus
    photo = [s for s in sources if s.name == "photoB"]
    # a copy of the photo's corpus with three samples lost and a line cut short
    copy = tmp_path / "copy"
    (copy / "videos").mkdir(parents=True)
    (copy / "labels").mkdir()
    mine = [s for s in samples if s.source == "photoB"]
    lost = {mine[1].id, mine[7].id, mine[-1].id}
    kept = []
    for line in (folder / "samples.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["source"] == "photoB" and record["id"] not in lost:
            kept.append(line)
            for key in ("video", "labels"):
                (copy / record[key]).write_bytes((folder / record[key]).read_bytes())
    (copy / "samples.jsonl").write_text("\n".join(kept) + "\n" + kept[0][:40] + "\n")
    log: list[str] = []
    result = synthesize(photo, copy, CONFIG, log=log.append)
    assert log[0].startswith("synth: 3 samples to render") and log[-1] == "synth: 3/3 rendered"
    assert sorted(s.id for s in result) == sorted(s.id for s in mine)


def test_the_same_seed_gives_the_same_samples_in_another_folder(corpus, tmp_path):
    sources, folder, samples, _ = corpus
    again = synthesize(list(reversed(sources)), tmp_path / "again", CONFIG, log=lambda m: None)
    first = {s.id: s for s in samples}
    second = {s.id: s for s in again}
    assert set(first) == set(second)
    for sid, a in first.items():
        b = second[sid]
        assert (a.recipe, a.split, a.frames, a.width, a.height, a.dimensions, a.presence, a.severity) == (
            b.recipe, b.split, b.frames, b.width, b.height, b.dimensions, b.presence, b.severity)
        la, lb = np.load(folder / a.labels), np.load(tmp_path / "again" / b.labels)
        assert np.array_equal(la["levels"], lb["levels"]) and np.array_equal(la["times"], lb["times"])


def test_another_seed_gives_other_recipes(corpus, tmp_path):
    sources, _, samples, _ = corpus
    photo = [s for s in sources if s.name == "photoB"]
    other = synthesize(photo, tmp_path / "other", SynthConfig(**{**CONFIG.__dict__, "seed": 4}), log=lambda m: None)
    assert len(other) == N_RECIPES
    ids = {s.id for s in samples if s.source == "photoB"}
    assert {s.id for s in other} != ids
    # the single-type coverage does not depend on the seed
    singles = Counter((s.recipe[0]["name"], s.recipe[0]["level"]) for s in other if len(s.recipe) == 1)
    assert singles == Counter(ALL_SINGLES)


def test_graded_mixes_are_rendered_and_labelled_dimension_by_dimension(source_files, tmp_path):
    photo = sources_from_paths([source_files / "photoB.png"])
    config = SynthConfig(**{**CONFIG.__dict__, "pairs": 0, "triples": 0, "mixes": 4, "mix_share": 0.7})
    samples = synthesize(photo, tmp_path / "m", config, log=lambda m: None)
    mixes = [s for s in samples if s.kind == "mix"]
    assert len(mixes) == 4 and len(samples) == 1 + len(ALL_SINGLES) + 4
    assert Counter(s.kind for s in samples if s.kind != "mix") == {"pristine": 1, "single": len(ALL_SINGLES)}
    assert any(len(s.recipe) >= 2 for s in mixes)
    for s in mixes:
        recipe = tuple(Step(**r) for r in s.recipe)
        assert s.id.split("~")[-1].startswith("mix") and s.id.endswith(recipe_id(recipe))
        assert (tmp_path / "m" / s.video).is_file()
        levels = np.load(tmp_path / "m" / s.labels)["levels"]
        assert np.array_equal(levels, frame_levels(recipe, s.frames))
        for dim in DIMENSIONS[:-1]:
            mine = [st for st in recipe if DISTORTION_DIMENSION[st.name] == dim]
            expected = 100.0 * (1 - quality_loss(mine[0].level, TYPES[mine[0].name].n_levels)) if mine else 100.0
            assert s.dimensions[dim] == pytest.approx(expected, abs=1e-3), (s.id, dim)
            assert sum(s.presence[t] for t in types_of(dim)) == len(mine)


def test_source_names_must_be_unique(source_files, tmp_path):
    twins = [Source("same", "photo", str(source_files / "photoB.png"), "a"),
             Source("same", "video", str(source_files / "clipA.mp4"), "b")]
    with pytest.raises(ValueError, match="unique"):
        synthesize(twins, tmp_path / "c", CONFIG, log=lambda m: None)


def test_an_unreadable_source_is_skipped_and_reported(source_files, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_text("not a video")
    log: list[str] = []
    samples = synthesize([Source("broken", "video", str(broken), "test")], tmp_path / "c", CONFIG, log=log.append)
    assert samples == []
    assert any(m.startswith("synth: skipped broken") for m in log), log


def test_read_samples_ignores_records_whose_files_are_gone(corpus, tmp_path):
    _, folder, samples, _ = corpus
    copy = tmp_path / "c"
    copy.mkdir()
    (copy / "samples.jsonl").write_text((folder / "samples.jsonl").read_text())
    assert read_samples(copy) == []
    assert read_samples(tmp_path / "nothing") == []


# --- the command ---------------------------------------------------------------------------


def error_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_cli_synth_without_sources_is_a_one_line_error(capsys, tmp_path):
    code = main(["synth", "--out", str(tmp_path / "c")])
    lines = error_lines(capsys)
    assert code != 0
    assert len(lines) == 1 and lines[0].startswith("vqscope: error:") and "no sources" in lines[0]


def test_cli_synth_with_a_missing_source_names_it(capsys, tmp_path):
    missing = tmp_path / "nowhere.mp4"
    code = main(["synth", str(missing), "--out", str(tmp_path / "c")])
    lines = error_lines(capsys)
    assert code != 0
    assert len(lines) == 1 and lines[0].startswith("vqscope: error: source not found") and str(missing) in lines[0]
    assert not (tmp_path / "c" / "samples.jsonl").exists()


def test_cli_synth_rejects_a_too_short_segment(capsys, source_files, tmp_path):
    code = main(["synth", str(source_files / "clipA.mp4"), "--out", str(tmp_path / "c"), "--seconds", "0.2"])
    lines = error_lines(capsys)
    assert code != 0 and len(lines) == 1 and lines[0].startswith("vqscope: error:") and "--seconds" in lines[0]


@pytest.mark.parametrize("option", [("--mixes", "-1"), ("--mix-share", "1.5")])
def test_cli_synth_rejects_bad_mix_options(capsys, source_files, tmp_path, option):
    code = main(["synth", str(source_files / "clipA.mp4"), "--out", str(tmp_path / "c"), *option])
    lines = error_lines(capsys)
    assert code != 0 and len(lines) == 1 and lines[0].startswith("vqscope: error:") and option[0] in lines[0]
    assert not (tmp_path / "c").exists()


def test_cli_synth_into_a_file_is_a_one_line_error(capsys, source_files, tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("in the way")
    code = main(["synth", str(source_files / "clipA.mp4"), "--out", str(blocker), "--seconds", "0.7"])
    lines = error_lines(capsys)
    assert code != 0 and len(lines) == 1 and lines[0].startswith("vqscope: error:") and "cannot write" in lines[0]


def test_cli_synth_renders_a_tiny_corpus(capsys, source_files, tmp_path):
    out = tmp_path / "corpus"
    code = main(["synth", str(source_files / "clipA.mp4"), "--out", str(out), "--seconds", "0.7",
                 "--pairs", "1", "--triples", "0", "--mixes", "2", "--holdout", "clipA", "--max-long-side", "128"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    n = 1 + len(ALL_SINGLES) + 1 + 2
    assert f"{n} samples in {out} (0 train, 0 val, {n} test) from 1 sources" in captured.out
    assert len((out / "samples.jsonl").read_text().splitlines()) == n
    samples = read_samples(out)
    assert len(samples) == n and {(s.width, s.height) for s in samples} == {(128, 96)}  # capped long side
    assert sum(s.kind == "mix" for s in samples) == 2
    assert "rendered" in captured.err


def test_cli_synth_with_unreadable_sources_does_not_report_success(capsys, source_files, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes((source_files / "clipA.mp4").read_bytes()[:2000])  # cut off: no index
    code = main(["synth", str(broken), "--out", str(tmp_path / "only-broken"), "--seconds", "0.7"])
    lines = error_lines(capsys)
    assert code not in (0, 3) and lines[-1].startswith("vqscope: error: no sample could be rendered")
    code = main(["synth", str(broken), str(source_files / "clipA.mp4"), "--out", str(tmp_path / "mixed"),
                 "--seconds", "0.7", "--pairs", "0", "--triples", "0", "--max-long-side", "128"])
    captured = capsys.readouterr()
    assert code == 3  # some sources failed
    assert "1 source(s) gave no sample: broken" in captured.err
    assert len(read_samples(tmp_path / "mixed")) == 1 + len(ALL_SINGLES)


def test_compression_samples_share_encoders_by_hash_at_matching_levels(corpus, tmp_path):
    """codecs=("libx264", "libx265"): each compression sample goes through one of them by a stable
    hash of its id, x265 at CRF + 5 where that stays within its range (level 4, CRF 50, cannot);
    everything else, and any corpus with one encoder, stays libx264 as before."""
    from vqscope.data.distortions import CODEC_CRF_OFFSET
    from vqscope.data.synth import compression_codec

    both = ("libx264", "libx265")
    compressed = (Step("compression", 2),)
    picks = [compression_codec(f"s{i}", compressed, 40, both) for i in range(200)]
    assert {c for c, _ in picks} == set(both)
    assert all(crf == 40 + CODEC_CRF_OFFSET[c] for c, crf in picks)
    assert {compression_codec(f"s{i}", (Step("compression", 4),), 50, both) for i in range(50)} == {("libx264", 50)}
    assert {compression_codec(f"s{i}", (Step("noise", 1),), 17, both) for i in range(50)} == {("libx264", 17)}
    assert {compression_codec(f"s{i}", compressed, 40, ("libx264",)) for i in range(50)} == {("libx264", 40)}
    with pytest.raises(ValueError, match="codecs must be among libx264, libx265"):
        SynthConfig(codecs=("libvpx-vp9",))

    sources, _, samples, _ = corpus
    clip = [s for s in sources if s.name == "clipA"]
    config = SynthConfig(**{**CONFIG.__dict__, "codecs": both})
    made = synthesize(clip, tmp_path / "x265", config, log=lambda m: None)
    by_codec = {s.id: s.extra.get("codec", "libx264") for s in made}
    hevc = [s for s in made if by_codec[s.id] == "libx265"]
    assert hevc and all(any(step["name"] == "compression" for step in s.recipe) for s in hevc)
    for s in made:
        assert probe(tmp_path / "x265" / s.video).codec == ("hevc" if by_codec[s.id] == "libx265" else "h264")
    assert all(s.extra["crf"] == TYPES["compression"].levels[[st for st in s.recipe if st["name"] == "compression"][0]
                                                            ["level"]] + 5 for s in hevc)
    # the one-encoder corpus of the same source is unchanged by the option's existence
    assert all(s.extra == {} for s in samples)


def test_cli_synth_names_the_encoders_it_can_share(capsys, source_files, tmp_path):
    code = main(["synth", str(source_files / "clipA.mp4"), "--out", str(tmp_path / "c"), "--codecs", "libx264,vp9"])
    lines = error_lines(capsys)
    assert code == 2 and lines == ["vqscope: error: --codecs must be among libx264, libx265; got ['libx264', 'vp9']"]
    assert not (tmp_path / "c").exists()


def test_a_folder_with_samples_refuses_settings_that_would_change_them(corpus, capsys):
    """Rendered samples keep their ids when the encoder, length or split settings change, so a
    folder that holds some is never finished with other settings: one line, exit 2."""
    sources, folder, samples, _ = corpus
    for change in ({"codecs": ("libx264", "libx265")}, {"seconds": 0.9}, {"holdout": ()}):
        with pytest.raises(ConfigError, match=f"{folder} holds samples made with {next(iter(change))} = "):
            synthesize(sources, folder, SynthConfig(**{**CONFIG.__dict__, **change}), log=lambda m: None)
    assert json.loads((folder / "config.json").read_text())["seconds"] == CONFIG.seconds
    clip = sources[0].path
    assert main(["synth", clip, "--out", str(folder), "--seconds", "0.9"]) == 2
    lines = error_lines(capsys)
    assert len(lines) == 1 and "holds samples made with seconds = 0.7, not 0.9" in lines[0]
    assert len(read_samples(folder)) == len(samples)
