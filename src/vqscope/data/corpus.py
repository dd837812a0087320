"""A labelled corpus from real footage: distorted copies, their targets, their features.

Two resumable phases, so that changing the feature extractor never means re-rendering:

1. `render_corpus`: for every source segment, a fixed set of recipes (each distortion type at
   each level, a few random combinations of two, and the undistorted source re-encoded) is
   rendered, encoded, decoded back and compared with the source (`fr_target`). The video and
   its per-frame targets are kept; one JSON line per sample records what was done.
2. `extract_corpus_features`: each video goes through the same feature extractor that scores
   user videos, through the feature cache (one entry per video and feature configuration),
   and each clip gets the mean target of the frames in its span.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence, TypeVar

import numpy as np

from ..features import FeatureConfig
from ..features.cache import CachedFeatures, FeatureCache, fill_cache
from .distortions import TYPES, apply
from .encode import write_video
from .fr_target import frame_targets, luma_of_rgb, luma_of_video
from .sources import Source, source_frames

Recipe = tuple[tuple[str, int], ...]
R = TypeVar("R")


@dataclass(frozen=True)
class CorpusConfig:
    seconds: float = 4.0  # length of each source segment
    segments: int = 1  # segments taken from each video source (photos give one)
    combos: int = 6  # random two-distortion recipes per segment
    seed: int = 0


@dataclass
class Sample:
    id: str
    source: str
    segment: int
    recipe: list[list]
    video: str  # relative to the corpus folder
    targets: str  # .npz with per-frame times and targets, relative to the corpus folder
    width: int
    height: int
    fps: float
    frames: int
    video_target: float
    spatial: float
    temporal_keep: float
    seconds_to_build: float = 0.0
    extra: dict = field(default_factory=dict)


@dataclass
class ClipSet:
    """Clip-level training data of a corpus for one feature configuration."""

    features: np.ndarray  # [clips, dim]
    targets: np.ndarray  # [clips]
    sample_index: np.ndarray  # [clips] -> index into `samples`
    samples: list[Sample]

    def video_targets(self) -> np.ndarray:
        return np.array([s.video_target for s in self.samples])


# The distortion types of the first model's corpus (vqscope-lite@1).
LITE_TYPES = ("compression", "scale", "lowres", "defocus_blur", "noise", "stutter")


def recipes_for(rng: np.random.Generator, combos: int) -> list[Recipe]:
    """Undistorted, every single distortion at every level, and `combos` random pairs."""
    out: list[Recipe] = [()]
    out += [((name, level),) for name in LITE_TYPES for level in range(TYPES[name].n_levels)]
    names = sorted(LITE_TYPES)
    seen: set[Recipe] = set()
    while len(seen) < combos:
        a, b = rng.choice(names, size=2, replace=False)
        if {a, b} == {"scale", "lowres"}:
            continue
        recipe = tuple(sorted(((str(a), int(rng.integers(0, TYPES[a].n_levels))),
                               (str(b), int(rng.integers(0, TYPES[b].n_levels))))))
        seen.add(recipe)
    return out + sorted(seen)


def recipe_id(recipe: Recipe) -> str:
    return "+".join(f"{n}{lvl}" for n, lvl in recipe) or "pristine"


def stable_hash(text: str) -> int:
    """A seed from a name: corpora seed by names, not positions, so reordering changes nothing."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def slug(text: str) -> str:
    """A name made safe for a file name."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)


def read_index(folder: str | os.PathLike[str], record: Callable[..., R], files: Callable[[R], Sequence[str]]) -> list[R]:
    """Records of a corpus folder's samples.jsonl whose files (relative paths) are all present;
    the last record of an id wins, and a line cut short by an interrupted build is skipped."""
    root = Path(folder)
    index = root / "samples.jsonl"
    found: dict[str, R] = {}
    if index.exists():
        for line in index.read_text().splitlines():
            try:
                s = record(**json.loads(line))
            except (json.JSONDecodeError, TypeError):
                continue
            if all((root / f).is_file() for f in files(s)):
                found[s.id] = s
    return list(found.values())


def read_samples(folder: str | os.PathLike[str]) -> list[Sample]:
    """Samples recorded in a corpus folder whose files are all present (last record wins)."""
    return read_index(folder, Sample, lambda s: (s.video, s.targets))


def render_corpus(
    sources: Sequence[Source],
    folder: str | os.PathLike[str],
    config: CorpusConfig = CorpusConfig(),
    log: Callable[[str], None] = print,
) -> list[Sample]:
    """Render (or finish rendering) the distorted videos and their targets in `folder`."""
    root = Path(folder)
    (root / "videos").mkdir(parents=True, exist_ok=True)
    (root / "targets").mkdir(parents=True, exist_ok=True)
    done = {s.id: s for s in read_samples(root)}
    with open(root / "samples.jsonl", "a", encoding="utf-8") as index:
        for si, source in enumerate(sources):
            segments = config.segments if source.kind == "video" else 1
            for segment in range(segments):
                # Seeds derive from names, not positions, so a resumed or reordered build
                # renders exactly the same samples.
                rng = np.random.default_rng([config.seed, stable_hash(source.name), segment])
                todo = [r for r in recipes_for(rng, config.combos)
                        if f"{slug(source.name)}~{segment}~{recipe_id(r)}" not in done]
                if not todo:
                    continue
                frames, fps = source_frames(source, config.seconds, rng, segment)
                if len(frames) < 8:
                    log(f"skip {source.name} segment {segment}: only {len(frames)} frames")
                    continue
                source_half = luma_of_rgb(frames)
                for recipe in todo:
                    sample_rng = np.random.default_rng(
                        [config.seed, stable_hash(source.name), segment, stable_hash(recipe_id(recipe))]
                    )
                    sample = _render_sample(source, segment, recipe, frames, source_half, fps, root, sample_rng)
                    index.write(json.dumps(asdict(sample)) + "\n")
                    index.flush()
                    done[sample.id] = sample
                    log(f"{sample.id}: target {sample.video_target:.1f} ({sample.seconds_to_build:.1f} s)")
    return list(done.values())


def _render_sample(source, segment, recipe, frames, source_half, fps, root: Path, rng) -> Sample:
    started = time.perf_counter()
    sid = f"{slug(source.name)}~{segment}~{recipe_id(recipe)}"
    distorted = apply(frames, recipe, rng)
    video = Path("videos") / f"{sid}.mp4"
    write_video(root / video, distorted.frames, fps, crf=distorted.crf)
    h, w = frames[0].shape[:2]
    decoded_half, times = luma_of_video(str(root / video), (h, w))
    n = min(decoded_half.shape[0], source_half.shape[0])
    shown = (distorted.shown or list(range(len(frames))))[:n]
    t = frame_targets(source_half[:n], decoded_half[:n], shown, fps=fps)
    targets = Path("targets") / f"{sid}.npz"
    np.savez(root / targets, times=times[:n], **t)
    dh, dw = distorted.frames[0].shape[:2]
    return Sample(
        id=sid, source=source.name, segment=segment, recipe=[list(step) for step in recipe],
        video=str(video), targets=str(targets), width=dw, height=dh, fps=float(fps), frames=n,
        video_target=float(t["target"].mean()), spatial=float(t["spatial"].mean()),
        temporal_keep=float(t["temporal_keep"].mean()), seconds_to_build=time.perf_counter() - started,
    )


def extract_corpus_features(
    folder: str | os.PathLike[str],
    samples: Sequence[Sample],
    config: FeatureConfig,
    workers: int = 1,
    log: Callable[[str], None] = print,
) -> ClipSet:
    """Features (through the feature cache) and clip targets of every sample."""
    root = Path(folder)
    cached_features = corpus_features(root, [s.video for s in samples], config, workers, log)
    feats, targets, owner = [], [], []
    for i, (s, cached) in enumerate(zip(samples, cached_features)):
        frame = np.load(root / s.targets)
        clip_t = clip_targets(frame["times"], frame["target"], cached.spans)
        feats.append(cached.features)
        targets.append(clip_t)
        owner.append(np.full(len(clip_t), i))
    return ClipSet(np.concatenate(feats), np.concatenate(targets), np.concatenate(owner), list(samples))


def corpus_features(
    folder: Path, videos: Sequence[str], config: FeatureConfig, workers: int, log: Callable[[str], None]
) -> list[CachedFeatures]:
    """Cached features of corpus videos (paths relative to `folder`), extracting what is missing."""
    cache = FeatureCache(folder / "features", config)
    paths = [str(folder / v) for v in videos]

    def progress(done: int, total: int) -> None:
        if done % 100 == 0 or done == total:
            log(f"features: {done}/{total}")

    report = fill_cache(paths, cache, workers=workers, on_progress=progress)
    if report.failed:
        raise RuntimeError(f"feature extraction failed for {len(report.failed)} corpus videos: "
                           f"{next(iter(report.failed.items()))}")
    out = []
    for path in paths:
        cached = cache.get(path)
        assert cached is not None
        out.append(cached)
    return out


def clip_targets(times: np.ndarray, frame_target: np.ndarray, spans: np.ndarray) -> np.ndarray:
    """Mean frame target inside each clip's [start, end) span (nearest frame if none)."""
    out = []
    for start, end, key in spans:
        inside = (times >= start - 1e-6) & (times < end - 1e-6)
        if not inside.any():
            inside = np.abs(times - key) == np.abs(times - key).min()
        out.append(float(frame_target[inside].mean()))
    return np.asarray(out)
