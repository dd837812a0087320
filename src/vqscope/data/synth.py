"""`vqscope synth`: a labelled fine-grained corpus from real footage and graded distortions.

Every source segment is rendered undistorted, with each of the twelve distortion types of
the taxonomy at each of its levels, and with random combinations of two and three types. A
share of the single-type samples confines the distortion to a stretch of the video, so the
heads learn to say *when* a problem happens, not only whether.

"Graded mixes" are the FineVQ-like part: in each, every one of the five dimensions is damaged
independently (with probability `mix_share`, by one of its types at a random level), so every
dimension varies across the mixes the way each dimension's opinion score varies across a
rated set of real uploads. In the catalogue above most videos leave a given dimension
untouched, and a dimension's SROCC there mostly measures how clean videos are ordered among
themselves; over mixes it measures whether the damage to that dimension is told apart from
the damage to the others.

Labels come from what was done, frame by frame: which types at which level (`levels.npz`,
[frames, 12], 0 = absent, k = level k-1), and from those the six dimension targets through
a loss table (data/loss_table.py: the designed curve `distortions.quality_loss`, or losses
measured by a full-reference measure): a dimension's score is 100 times the product of
(1 - loss) over the distortions of that dimension present in the frame; "overall" takes the
product over all of them. The labels, not the targets, are what is stored, so a new table
needs no new render. The sources themselves are taken as clean (score 100): this is a
scale of *added* damage, which is what a distortion head must learn to see.

Samples of held-out sources (by name, and a stable hash share of the rest) are marked
`split = "test"` so no model ever trains on their content; `"val"` picks the training
options. Everything derives from the seed and the source names, so a resumed or repeated
build renders the same recipes.
"""

from __future__ import annotations

import fnmatch
import json
import multiprocessing
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from ..taxonomy import DIMENSIONS, DISTORTION_DIMENSION, DISTORTION_TYPES, types_of
from .corpus import corpus_features, read_index, slug, stable_hash
from .distortions import CODEC_CRF_OFFSET, MAX_CRF, TYPES, Step, apply, check_codecs, span_frames
from .encode import write_video
from .loss_table import LossTable, designed_table
from .sources import Source, source_frames

# Types a single-type sample may confine to part of the video (the encoder setting and
# frame-rate-wide effects cannot change mid-stream in a way a viewer would see as a stretch).
LOCALISABLE = tuple(t for t in DISTORTION_TYPES if t != "compression")
# Pairs that contradict each other and never appear in one recipe.
_EXCLUSIVE = ({"overexposure", "underexposure"},)


@dataclass(frozen=True)
class SynthConfig:
    seconds: float = 3.0  # length of each source segment
    segments: int = 1  # segments per video source (photographs give one)
    pairs: int = 5  # random two-type recipes per segment
    triples: int = 3  # random three-type recipes per segment
    localised_share: float = 0.3  # single-type samples confined to a stretch of the video
    mixes: int = 0  # graded mixes per segment: each dimension damaged independently
    mix_share: float = 0.5  # chance that a mix damages a given dimension
    max_long_side: int = 960  # rendering size cap (aspect kept)
    test_share: float = 0.2  # sources held out for testing by a stable hash of the name
    val_share: float = 0.1  # sources kept for choosing training options
    holdout: tuple[str, ...] = ()  # source names (or fnmatch patterns) always held out for testing
    seed: int = 0
    codecs: tuple[str, ...] = ("libx264",)  # encoders of compression samples, shared by a stable hash

    def __post_init__(self) -> None:
        object.__setattr__(self, "codecs", check_codecs(self.codecs))
        object.__setattr__(self, "holdout", tuple(self.holdout))


@dataclass
class SynthSample:
    id: str
    source: str
    split: str  # train | val | test
    segment: int
    recipe: list[dict]  # [{"name", "level", "start", "end"}]
    video: str  # relative to the corpus folder
    labels: str  # .npz with per-frame times and levels, relative to the corpus folder
    width: int
    height: int
    fps: float
    frames: int
    dimensions: dict[str, float]  # video-level targets, 0-100
    presence: dict[str, int]  # type -> 1 where it affects any frame
    severity: dict[str, float]  # type -> (level + 1) / n_levels of its worst frame, 0 where absent
    seconds_to_build: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """pristine, single, pair, triple (the catalogue) or mix (a graded mix)."""
        if self.id.rsplit("~", 1)[-1].startswith(MIX_PREFIX):
            return "mix"
        return ("pristine", "single", "pair", "triple")[len(self.recipe)]


Recipe = tuple[Step, ...]
MIX_PREFIX = "mix"  # sample ids of graded mixes: <source>~<segment>~mix<i>-<recipe id>


def source_split(name: str, config: SynthConfig) -> str:
    """train, val or test for a source: named hold-outs first, then a stable hash share."""
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in config.holdout):
        return "test"
    u = (stable_hash(f"split:{config.seed}:{name}") % 10_000) / 10_000
    if u < config.test_share:
        return "test"
    if u < config.test_share + config.val_share:
        return "val"
    return "train"


def recipe_id(recipe: Recipe) -> str:
    parts = []
    for s in recipe:
        part = f"{s.name}{s.level}"
        if not s.whole:
            part += f"@{int(round(s.start * 100))}-{int(round(s.end * 100))}"
        parts.append(part)
    return "+".join(parts) or "pristine"


def recipes_for(rng: np.random.Generator, config: SynthConfig) -> list[Recipe]:
    """Pristine; every type at every level (some confined to a stretch); random pairs and triples."""
    out: list[Recipe] = [()]
    for name in DISTORTION_TYPES:
        for level in range(TYPES[name].n_levels):
            if name in LOCALISABLE and rng.random() < config.localised_share:
                length = float(rng.uniform(0.35, 0.55))
                start = float(rng.uniform(0.05, 0.95 - length))
                out.append((Step(name, level, round(start, 2), round(start + length, 2)),))
            else:
                out.append((Step(name, level),))
    seen: set[Recipe] = set()
    for size, count in ((2, config.pairs), (3, config.triples)):
        made = 0
        while made < count:
            names = [str(n) for n in rng.choice(DISTORTION_TYPES, size=size, replace=False)]
            if any(pair <= set(names) for pair in _EXCLUSIVE):
                continue
            recipe = tuple(sorted(Step(n, int(rng.integers(0, TYPES[n].n_levels))) for n in names))
            if recipe not in seen:
                seen.add(recipe)
                made += 1
    return out + sorted(seen)


def mixes_for(rng: np.random.Generator, config: SynthConfig) -> list[Recipe]:
    """`config.mixes` graded mixes: each of the five dimensions gets, with probability
    `config.mix_share`, one of its types at a random level (so at most one type a dimension,
    and never both exposures). A mix may come out undistorted; it stays in, as in a rated set."""
    out: list[Recipe] = []
    for _ in range(config.mixes):
        steps = []
        for dim in DIMENSIONS[:-1]:
            if rng.random() < config.mix_share:
                name = str(rng.choice(types_of(dim)))
                steps.append(Step(name, int(rng.integers(0, TYPES[name].n_levels))))
        out.append(tuple(sorted(steps)))
    return out


def sample_recipes(source: Source, segment: int, config: SynthConfig) -> list[tuple[str, Recipe]]:
    """(recipe name, recipe) of every sample of a source segment: the catalogue, then the
    graded mixes (from their own random stream, so asking for more mixes changes nothing else)."""
    rng = np.random.default_rng([config.seed, stable_hash(source.name), segment])
    out = [(recipe_id(r), r) for r in recipes_for(rng, config)]
    mix_rng = np.random.default_rng([config.seed, stable_hash(source.name), segment, stable_hash("mixes")])
    out += [(f"{MIX_PREFIX}{i}-{recipe_id(r)}", r) for i, r in enumerate(mixes_for(mix_rng, config))]
    return out


def compression_codec(sample_id: str, recipe: Recipe, crf: int, codecs: Sequence[str]) -> tuple[str, int]:
    """(encoder, CRF) of a sample: libx264 at the recipe's CRF unless the recipe compresses and
    the sample's stable hash picks another of `codecs` that can reach the same level (its CRF
    shifted by `CODEC_CRF_OFFSET`). Samples without compression are always libx264's transparent
    carrier; one encoder list gives the same corpus as before the option existed."""
    if len(codecs) < 2 or not any(s.name == "compression" for s in recipe):
        return "libx264", crf
    codec = codecs[stable_hash(f"codec:{sample_id}") % len(codecs)]
    shifted = crf + CODEC_CRF_OFFSET[codec]
    return (codec, shifted) if shifted <= MAX_CRF else ("libx264", crf)


def frame_levels(recipe: Recipe, n_frames: int) -> np.ndarray:
    """[frames, 12] int8: level + 1 of each type in each frame, 0 where absent."""
    levels = np.zeros((n_frames, len(DISTORTION_TYPES)), dtype=np.int8)
    for step in recipe:
        lo, hi = span_frames(step, n_frames) if not step.whole else (0, n_frames)
        levels[lo:hi, DISTORTION_TYPES.index(step.name)] = step.level + 1
    return levels


def type_keep(levels: np.ndarray, table: LossTable | None = None) -> np.ndarray:
    """Per frame and type, the share of quality the type leaves, 1 - loss(level) (1 where
    absent): [frames, 12] from per-frame levels [frames, 12]. `table`: the losses (data/
    loss_table.py); None reads the designed curve `quality_loss`."""
    losses = (table or designed_table()).losses
    keep = np.ones(levels.shape, dtype=np.float64)
    for j, name in enumerate(DISTORTION_TYPES):
        keep[:, j] = np.array([1.0] + [1.0 - x for x in losses[name]])[levels[:, j]]
    return keep


def dimension_targets(levels: np.ndarray, table: LossTable | None = None) -> dict[str, np.ndarray]:
    """Per-frame 0-100 target of each dimension from per-frame levels [frames, 12]."""
    keep = type_keep(levels, table)
    out = {}
    for dim in DIMENSIONS:
        cols = [j for j, t in enumerate(DISTORTION_TYPES) if dim == "overall" or DISTORTION_DIMENSION[t] == dim]
        out[dim] = 100.0 * keep[:, cols].prod(axis=1)
    return out


def video_targets(folder: str | os.PathLike[str], samples: Sequence[SynthSample],
                  table: LossTable | None = None) -> np.ndarray:
    """[videos, 6] video-level targets (mean over frames, in DIMENSIONS order). With the
    designed curve they are the ones recorded at rendering; another table recomputes them from
    the per-frame labels, so a corpus is never re-rendered for a new table."""
    if table is None:
        return np.array([[s.dimensions[d] for d in DIMENSIONS] for s in samples])
    root = Path(folder)
    out = np.empty((len(samples), len(DIMENSIONS)))
    for i, s in enumerate(samples):
        dims = dimension_targets(np.load(root / s.labels)["levels"], table)
        out[i] = [dims[d].mean() for d in DIMENSIONS]
    return out


def _fit(frames: list[np.ndarray], max_long_side: int) -> list[np.ndarray]:
    from .distortions import resize_frames

    h, w = frames[0].shape[:2]
    scale = max_long_side / max(h, w)
    if scale >= 1.0:
        return frames
    return resize_frames(frames, max(2, int(w * scale) // 2 * 2), max(2, int(h * scale) // 2 * 2))


PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


def sources_from_paths(paths: Sequence[str | os.PathLike[str]]) -> list[Source]:
    """Sources from files and folders: photographs by suffix, every other file as a video.
    A source is named by its file stem (its parent folder joins where stems repeat)."""
    from ..output import expand_inputs

    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(q for q in p.rglob("*") if q.suffix.lower() in PHOTO_SUFFIXES)
            files += [Path(v) for v in expand_inputs([str(p)])]
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(str(p))
    files = sorted(set(files))
    stems = [f.stem for f in files]
    out = []
    for f in files:
        name = f.stem if stems.count(f.stem) == 1 else f"{f.parent.name}/{f.stem}"
        kind = "photo" if f.suffix.lower() in PHOTO_SUFFIXES else "video"
        out.append(Source(name, kind, str(f), f"file {f}"))
    return out


def read_samples(folder: str | os.PathLike[str]) -> list[SynthSample]:
    """Samples recorded in a corpus folder whose files are present (last record wins)."""
    return read_index(folder, SynthSample, lambda s: (s.video, s.labels))


@dataclass(frozen=True)
class _Unit:
    source: Source
    segment: int
    split: str
    todo: tuple[tuple[str, Recipe], ...]  # (recipe name, recipe)


def _units(sources: Sequence[Source], config: SynthConfig, done: set[str]) -> Iterator[_Unit]:
    for source in sources:
        split = source_split(source.name, config)
        for segment in range(config.segments if source.kind == "video" else 1):
            todo = tuple((name, r) for name, r in sample_recipes(source, segment, config)
                         if f"{slug(source.name)}~{segment}~{name}" not in done)
            if todo:
                yield _Unit(source, segment, split, todo)


def _render_unit(args: tuple[_Unit, SynthConfig, str]) -> list[dict] | str:
    unit, config, folder = args
    import torch

    torch.set_num_threads(1)
    root = Path(folder)
    rng = np.random.default_rng([config.seed, stable_hash(unit.source.name), unit.segment])
    try:
        frames, fps = source_frames(unit.source, config.seconds, rng, unit.segment)
    except Exception as exc:  # an unreadable source is reported, the build goes on
        return f"{unit.source.name}: {type(exc).__name__}: {exc}"
    if len(frames) < 16:
        return f"{unit.source.name} segment {unit.segment}: only {len(frames)} frames"
    frames = _fit(frames, config.max_long_side)
    out = []
    for name, recipe in unit.todo:
        started = time.perf_counter()
        sid = f"{slug(unit.source.name)}~{unit.segment}~{name}"
        sample_rng = np.random.default_rng([config.seed, stable_hash(sid)])
        distorted = apply(frames, recipe, sample_rng)
        video = Path("videos") / f"{sid}.mp4"
        codec, crf = compression_codec(sid, recipe, distorted.crf, config.codecs)
        write_video(root / video, distorted.frames, fps, codec=codec, crf=crf)
        n = len(distorted.frames)
        levels = frame_levels(recipe, n)
        times = np.arange(n) / float(fps)
        labels = Path("labels") / f"{sid}.npz"
        np.savez_compressed(root / labels, times=times, levels=levels)
        dims = dimension_targets(levels)
        worst = levels.max(axis=0)
        h, w = distorted.frames[0].shape[:2]
        sample = SynthSample(
            id=sid, source=unit.source.name, split=unit.split, segment=unit.segment,
            recipe=[{"name": s.name, "level": s.level, "start": s.start, "end": s.end} for s in recipe],
            video=str(video), labels=str(labels), width=w, height=h, fps=float(fps), frames=n,
            dimensions={k: round(float(v.mean()), 3) for k, v in dims.items()},
            presence={t: int(worst[j] > 0) for j, t in enumerate(DISTORTION_TYPES)},
            severity={t: round(float(worst[j]) / TYPES[t].n_levels, 3) for j, t in enumerate(DISTORTION_TYPES)},
            seconds_to_build=round(time.perf_counter() - started, 3),
            extra={"codec": codec, "crf": crf} if codec != "libx264" else {},
        )
        out.append(asdict(sample))
    return out


def synthesize(
    sources: Sequence[Source],
    folder: str | os.PathLike[str],
    config: SynthConfig = SynthConfig(),
    workers: int = 1,
    log: Callable[[str], None] = print,
) -> list[SynthSample]:
    """Render (or finish rendering) the corpus in `folder`; returns every sample in it."""
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise ValueError("source names must be unique: they decide the held-out split")
    root = Path(folder)
    existing = read_samples(root)
    if existing:
        _check_same_settings(root, config)
    (root / "videos").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps(asdict(config), indent=2) + "\n")
    done = {s.id for s in existing}
    units = list(_units(sources, config, done))
    total = sum(len(u.todo) for u in units)
    if total:
        log(f"synth: {total} samples to render from {len(units)} source segments ({len(done)} already there)")
    made = 0
    jobs = [(u, config, str(root)) for u in units]
    with open(root / "samples.jsonl", "a", encoding="utf-8") as index:
        if workers > 1 and len(jobs) > 1:
            context = multiprocessing.get_context("spawn")
            with context.Pool(workers) as pool:
                results = pool.imap_unordered(_render_unit, jobs)
                made = _record(results, index, made, total, log)
        else:
            made = _record(map(_render_unit, jobs), index, made, total, log)
    return read_samples(root)


# Settings that change what an already rendered sample is (its pixels or its split) without
# changing its id: a folder holding samples made with others would silently mix two corpora.
_RENDER_SETTINGS = ("seconds", "segments", "localised_share", "mix_share", "max_long_side", "test_share",
                    "val_share", "holdout", "seed", "codecs")


def _check_same_settings(root: Path, config: SynthConfig) -> None:
    """A ConfigError where the settings `root`'s samples were made with differ from `config`'s."""
    from ..errors import ConfigError

    saved_path = root / "config.json"
    if not saved_path.is_file():
        return
    try:
        saved = json.loads(saved_path.read_text())
    except (OSError, ValueError):
        return
    new = asdict(config)
    default = asdict(SynthConfig())
    for key in _RENDER_SETTINGS:
        before = saved.get(key, default[key])
        before = list(before) if isinstance(before, (list, tuple)) else before
        after = list(new[key]) if isinstance(new[key], (list, tuple)) else new[key]
        if before != after:
            raise ConfigError(f"{root} holds samples made with {key} = {before}, not {after}: use another folder "
                              f"(or empty this one) for a corpus with other settings")


def _record(results, index, made: int, total: int, log: Callable[[str], None]) -> int:
    for result in results:
        if isinstance(result, str):
            log(f"synth: skipped {result}")
            continue
        for record in result:
            index.write(json.dumps(record) + "\n")
        index.flush()
        made += len(result)
        log(f"synth: {made}/{total} rendered")
    return made


def _clip_means(times: np.ndarray, per_frame: np.ndarray, spans: np.ndarray) -> np.ndarray:
    """Mean of per-frame rows over each clip's [start, end) span (the frame nearest the key
    frame where no frame time falls inside)."""
    out = []
    for start, end, key in spans:
        inside = (times >= start - 1e-6) & (times < end - 1e-6)
        if not inside.any():
            inside = np.abs(times - key) == np.abs(times - key).min()
        out.append(per_frame[inside].mean(axis=0))
    return np.asarray(out)


def clip_labels(times: np.ndarray, levels: np.ndarray, spans: np.ndarray,
                table: LossTable | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per clip: the six dimension targets [clips, 6] and the share of the clip's frames that
    carry each type [clips, 12] (soft presence), over each clip's [start, end) span."""
    dims = dimension_targets(levels, table)
    dim_matrix = np.stack([dims[d] for d in DIMENSIONS], axis=1)
    return _clip_means(times, dim_matrix, spans), _clip_means(times, (levels > 0).astype(np.float64), spans)


def clip_keep(times: np.ndarray, levels: np.ndarray, spans: np.ndarray, table: LossTable | None = None) -> np.ndarray:
    """Per clip and type, the mean share of quality the type leaves over the clip's frames
    ([clips, 12], 1 where absent): what a severity head learns."""
    return _clip_means(times, type_keep(levels, table), spans)


@dataclass
class FineClipSet:
    """Clip-level training data of a synthetic corpus for one feature configuration."""

    features: np.ndarray  # [clips, dim]
    dimensions: np.ndarray  # [clips, 6] targets 0-100, in DIMENSIONS order
    presence: np.ndarray  # [clips, 12] share of the clip's frames carrying each type
    sample_index: np.ndarray  # [clips] -> index into `samples`
    samples: list[SynthSample]
    keep: np.ndarray | None = None  # [clips, 12] share of quality each type leaves (clip_keep)
    table: LossTable | None = None  # the losses the targets were built on (None: the designed curve)


def extract_synth_features(
    folder: str | os.PathLike[str],
    samples: Sequence[SynthSample],
    config,
    workers: int = 1,
    log: Callable[[str], None] = print,
    table: LossTable | None = None,
) -> FineClipSet:
    """Features of every sample (through the feature cache) and its clip labels, on the losses
    of `table` (None: the designed curve)."""
    root = Path(folder)
    cached_features = corpus_features(root, [s.video for s in samples], config, workers, log)
    feats, dims, pres, keep, owner = [], [], [], [], []
    for i, (s, cached) in enumerate(zip(samples, cached_features)):
        labels = np.load(root / s.labels)
        d, p = clip_labels(labels["times"], labels["levels"], cached.spans, table)
        feats.append(cached.features)
        dims.append(d)
        pres.append(p)
        keep.append(clip_keep(labels["times"], labels["levels"], cached.spans, table))
        owner.append(np.full(len(d), i))
    return FineClipSet(np.concatenate(feats), np.concatenate(dims), np.concatenate(pres),
                       np.concatenate(owner), list(samples), np.concatenate(keep), table)
