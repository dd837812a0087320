#!/usr/bin/env python3
"""Damage made by other tools: does the default model follow graded FFmpeg damage on unseen footage?

    python bench/real_damage.py --work-dir WORK [--clips N|NAMES] [--ladders NAMES] [--levels 1,3,5]
                                [--jobs 2] [--json out.json] [--markdown out.md] [--no-baselines]
                                [--generator]

Why: every figure on the default model's card comes from damage made by vqscope's own
generator, the code it was trained on (issue 20). This bench renders graded damage with
FFmpeg's own encoders and filters instead, on real footage the model never trained on, and
measures what the model says about it:

* footage: the real clips of ../shared/media (Kinetics-400, KoNViD-1k, LSVQ; never a training
  source, by design of `vqscope.data.sources`) and the videos of the training pool that the
  model's own metadata marks as held out (`split == "test"` in `model.info.training["sources"]`,
  fetched with `apt-get download` as training does). Each is cut to `--seconds` from its middle,
  at most `--max-side` pixels on its long side (768, the training cap) and 30 fps, into a
  lossless FFV1 intermediate from which every rendering is made;
* ladders (`LADDERS`, five levels each): x264 at a CRF and a bitrate ladder, x265 CRF, AV1
  (SVT-AV1) CRF, downscale-upscale, pixelation, unsharp-mask oversharpening, Gaussian blur,
  horizontal motion blur, sensor-like noise (luma and chroma) at a realistic bitrate and kept
  near-lossless, exposure up and down, white balance warm/cool/green/magenta, saturation up and
  down, flicker, dropped frames (variable frame rate, as phones record), duplicated frames (a
  lower frame rate repeated), shake. Level 0 is the untouched cut, x264 CRF 10, which is also the
  carrier of every filter ladder, so that levels differ only by the damage;
* per file: the model's score, six dimensions and twelve distortion probabilities; NIQE and
  BRISQUE (`nr_baselines.py`) on sampled frames; a full-reference measure against level 0, the
  one the training targets use (`vqscope.data.fr_target`: GMSD mapped to 0-100, times the share a
  lower shown frame rate keeps).

`--generator` renders the twelve types of the taxonomy with vqscope's own generator instead
(`gen_*` ladders: its trained levels, after one step milder than any of them), on the same cuts
and carrier: it separates what the model misses on a tool's look from what it misses on this
footage whatever made the damage.

It reports, as Markdown tables (and everything in --json): per ladder, the Kendall tau between
level and score, and between level and the ladder's dimension, averaged over clips (-1: every
step down is seen), the same tau for NIQE and BRISQUE (negated, so -1 is ideal for all), what
the first levels do to the score, the score drop at the strongest level, and the Spearman
correlation of score drops with full-reference drops; per distortion type, ROC AUC of its
probability (damaged against untouched, all levels and the stronger half) and recall at
p >= 0.5 on the stronger half; types named on untouched videos (false alarms); and the rank
agreement of drops with the full-reference measure pooled over all ladders. Beside them, for
reading why a target is missed: the overall score's two halves per ladder (the dimensions'
product and the ungated regression) and the headline figures with either one as the score; the
steps from one level to the next grouped by how far the full-reference measure falls, with the
share on which the score rises instead; and how far barely visible damage moves the score.

Renders, measurements and cuts are cached in --work-dir: a re-run only computes what is new
(a different model recomputes the model's part only).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
import multiprocessing
import resource
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MEDIA = ROOT.parent / "shared" / "media"
MEDIA_PATTERNS = ("kinetics_*.mp4", "konvid_*.mp4", "ugc_*.mp4")
CARRIER = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "10", "-pix_fmt", "yuv420p"]
LEVELS = 5
STRONG = (3, 4, 5)  # the stronger half of a five-level ladder


# -- footage ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Footage:
    name: str  # clip name in tables and in the work dir
    path: str
    origin: str


@dataclass(frozen=True)
class Cut:
    """The lossless intermediate every rendering of a clip is made from."""

    name: str
    path: Path
    width: int
    height: int
    fps: Fraction
    frames: int
    origin: str

    @property
    def lines(self) -> float:
        """Spatial parameters are given at 720 lines (as the generator's are) and scaled by this."""
        return min(self.width, self.height) / 720.0


def media_footage(media: Path) -> list[Footage]:
    out = []
    for pattern in MEDIA_PATTERNS:
        for p in sorted(media.glob(pattern)):
            if p.stat().st_size > 0:
                out.append(Footage(p.stem, str(p), f"../shared/media/{p.name}"))
    return out


def held_out_footage(model, cache: Path) -> list[Footage]:
    """Videos of the training pool that the model's metadata marks as held out (split test)."""
    from vqscope.data.sources import DEBIAN_FILES, _label, fetch_debian_files

    held = {s["name"] for s in model.info.training.get("sources", [])
            if s.get("kind") == "video" and s.get("split") == "test"}
    files = [f for f in DEBIAN_FILES if f[2] == "video" and f"deb:{f[0]}:{_label(f[1])}" in held]
    sources = fetch_debian_files(cache, files)
    return [Footage("heldout_" + s.name.rsplit(":", 1)[-1], s.path, f"{s.origin} ({s.name}, split test)")
            for s in sources if s.name in held]


def probe(path: str | Path) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets", "-show_entries",
         "stream=width,height,r_frame_rate,nb_read_packets:format=duration", "-of", "json", str(path)],
        check=True, capture_output=True, text=True)
    data = json.loads(out.stdout)
    s = data["streams"][0]
    return {"width": int(s["width"]), "height": int(s["height"]), "fps": Fraction(s["r_frame_rate"]),
            "frames": int(s.get("nb_read_packets", 0)), "duration": float(data["format"]["duration"])}


def cut_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    scale = min(1.0, max_side / max(width, height))
    return max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2)


def make_cut(footage: Footage, work: Path, seconds: float, max_side: int) -> Cut:
    """Cut `seconds` from the middle of the footage, at most max_side and 30 fps, to FFV1."""
    folder = work / "clips" / footage.name
    path = folder / "cut.mkv"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        src = probe(footage.path)
        w, h = cut_size(src["width"], src["height"], max_side)
        start = max(0.0, (src["duration"] - seconds) / 2)
        vf = f"scale={w}:{h}:flags=lanczos,format=yuv420p"
        if src["fps"] > 30.5:
            vf = "fps=30," + vf
        tmp = folder / "cut.tmp.mkv"
        # Seek by decoding from the start (-ss after -i): some sources (cockatoo.mp4) have one
        # keyframe, and a fast seek into them decodes garbage. Any decoder complaint is fatal.
        proc = subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", footage.path, "-ss", f"{start:.3f}", "-t", str(seconds),
                               "-an", "-sn", "-vf", vf, "-c:v", "ffv1", str(tmp)],
                              check=False, capture_output=True, text=True)
        if proc.returncode != 0 or proc.stderr.strip():
            raise RuntimeError(f"cutting {footage.path} failed or decoded with errors: {proc.stderr[-1000:]}")
        tmp.replace(path)
    info = probe(path)
    return Cut(footage.name, path, info["width"], info["height"], info["fps"], info["frames"], footage.origin)


# -- ladders ----------------------------------------------------------------------------------
def _odd(x: float, low: int = 1) -> int:
    n = max(low, int(round(x)))
    return n if n % 2 else n + 1


def _encode_x264_crf(cut: Cut, crf: float) -> list[str]:
    return ["-c:v", "libx264", "-preset", "medium", "-crf", f"{crf:g}", "-pix_fmt", "yuv420p"]


def _rate(cut: Cut, bpp: float) -> int:
    """Bits per second for `bpp` bits per pixel per frame."""
    return max(8000, int(bpp * cut.width * cut.height * float(cut.fps)))


def _encode_x264_rate(cut: Cut, bpp: float) -> list[str]:
    r = _rate(cut, bpp)
    return ["-c:v", "libx264", "-preset", "medium", "-b:v", str(r), "-maxrate", str(int(1.5 * r)),
            "-bufsize", str(2 * r), "-pix_fmt", "yuv420p"]


def _encode_x265(cut: Cut, crf: float) -> list[str]:
    return ["-c:v", "libx265", "-preset", "fast", "-crf", f"{crf:g}", "-pix_fmt", "yuv420p",
            "-x265-params", "log-level=error:pools=1:frame-threads=1"]


def _encode_av1(cut: Cut, crf: float) -> list[str]:
    return ["-c:v", "libsvtav1", "-preset", "10", "-crf", f"{crf:g}", "-pix_fmt", "yuv420p", "-svtav1-params", "lp=1"]


def _filter(vf: Callable[[Cut, float], str], encode: Callable[[Cut, float], list[str]] | None = None):
    """A filter ladder: the filter, then the near-lossless carrier (or a given encoder)."""
    def render(cut: Cut, value: float) -> list[str]:
        return ["-vf", vf(cut, value)] + (encode(cut, value) if encode else CARRIER)
    return render


def _rescale(cut: Cut, factor: float) -> str:
    w, h = max(2, int(cut.width / factor) // 2 * 2), max(2, int(cut.height / factor) // 2 * 2)
    return f"scale={w}:{h}:flags=bicubic,scale={cut.width}:{cut.height}:flags=bicubic"


def _pixelate(cut: Cut, block: float) -> str:
    side = max(2, int(round(block * cut.lines)))
    w, h = max(1, cut.width // side), max(1, cut.height // side)
    return f"scale={w}:{h}:flags=area,scale={cut.width}:{cut.height}:flags=neighbor"


def _unsharp(cut: Cut, amount: float) -> str:
    m = min(23, _odd(5 * cut.lines, 3))
    return f"unsharp={m}:{m}:{amount:g}:{m}:{m}:0"


def _gblur(cut: Cut, sigma: float) -> str:
    return f"gblur=sigma={sigma * cut.lines:.3f}:steps=3"


def _motion_blur(cut: Cut, length: float) -> str:
    n = min(49, _odd(length * cut.lines))
    row = " ".join(["1"] * n)
    planes = ":".join(f"{p}m='{row}':{p}rdiv=1/{n}:{p}mode=row" for p in range(3))
    return f"format=yuv444p,convolution={planes},format=yuv420p"


def _noise_strength(sigma: float) -> float:
    # FFmpeg's noise filter (gaussian, temporal) gives a standard deviation of about 0.66 x strength.
    return sigma / 0.66


def _noise(cut: Cut, sigma: float) -> str:
    s = _noise_strength(sigma)
    return f"noise=c0s={s:.1f}:c0f=t:c1s={s / 2:.1f}:c1f=t:c2s={s / 2:.1f}:c2f=t"


def _realistic(cut: Cut, value: float) -> list[str]:
    """What an upload of the noisy clip gets: x264 CRF 18, capped at 0.15 bit per pixel per frame."""
    r = _rate(cut, 0.15)
    return ["-c:v", "libx264", "-preset", "medium", "-crf", "18", "-maxrate", str(r), "-bufsize", str(2 * r),
            "-pix_fmt", "yuv420p"]


def _exposure(cut: Cut, stops: float) -> str:
    # A gain of `stops` in linear light on a display gamma of 2.2, clipped: highlights blow out
    # going up, shadows crush going down.
    k = 2.0 ** (stops / 2.2)
    e = f"clip(val*{k:.4f}\\,0\\,255)"
    return f"lutrgb=r={e}:g={e}:b={e}"


def _temperature(cut: Cut, kelvin: float) -> str:
    return f"colortemperature=temperature={kelvin:g}:pl=1"


def _green(cut: Cut, x: float) -> str:
    return f"colorbalance=gs={x:g}:gm={x:g}:gh={x:g}:pl=1"


def _saturation(cut: Cut, s: float) -> str:
    return f"eq=saturation={s:g}"


def _flicker(cut: Cut, swing: float) -> str:
    return f"eq=brightness='{swing:g}*(0.6*sin(2*PI*t*2.1)+0.4*sin(2*PI*t*5.3))':eval=frame"


def _dropped(cut: Cut, share: float) -> list[str]:
    # Frames dropped at random, the rest keep their timestamps (variable frame rate).
    return ["-vf", f"select='eq(n\\,0)+gt(random(0)\\,{share:g})'", "-fps_mode", "passthrough"] + CARRIER


def _duplicated(cut: Cut, hold: float) -> str:
    f = cut.fps
    low = f / int(hold)
    return f"fps=fps={low.numerator}/{low.denominator},fps=fps={f.numerator}/{f.denominator}"


def _shake(cut: Cut, share: float) -> str:
    a = max(1, int(round(share * min(cut.width, cut.height))))
    return (f"crop=w=iw-{2 * a}:h=ih-{2 * a}:x='{a}+{a}*sin(n*2.3)*cos(n*0.71)'"
            f":y='{a}+{a}*sin(n*1.7+1)*cos(n*0.37)':exact=1,scale={cut.width}:{cut.height}:flags=bicubic")


@dataclass(frozen=True)
class Ladder:
    name: str
    dimension: str  # the dimension it should lower
    kind: str  # the distortion type it should raise
    values: tuple[float, ...]  # one per level, weakest first
    unit: str
    render: Callable[[Cut, float], list[str]]  # ffmpeg output options after "-i cut.mkv"
    temporal: bool = False  # frames are dropped or repeated: the full-reference measure matches them
    # False where the full-reference measure (per-frame luma GMSD) misjudges the damage: colour
    # only (it sees luma), brightness swings over time (it compares frame by frame, and a
    # gradient measure shrugs off an offset), shake (it rates a shift of the picture as ruin).
    fr_fair: bool = True
    generator: str = ""  # vqscope's own distortion type that renders it (`--generator`), else FFmpeg

    def describe(self) -> str:
        return f"{self.unit} {', '.join(f'{v:g}' for v in self.values)}"


LADDERS: tuple[Ladder, ...] = (
    Ladder("x264_crf", "artifact", "compression", (26, 31, 36, 41, 46), "x264 medium, CRF", _encode_x264_crf),
    Ladder("x264_bitrate", "artifact", "compression", (0.08, 0.04, 0.02, 0.01, 0.005),
           "x264 medium ABR, bits per pixel per frame", _encode_x264_rate),
    Ladder("x265_crf", "artifact", "compression", (28, 33, 38, 43, 48), "x265 fast, CRF", _encode_x265),
    Ladder("av1_crf", "artifact", "compression", (35, 43, 50, 56, 63), "SVT-AV1 preset 10, CRF", _encode_av1),
    Ladder("rescale", "blur", "defocus_blur", (1.5, 2, 3, 4, 6), "bicubic down and up, factor", _filter(_rescale)),
    Ladder("pixelate", "artifact", "mosaic", (4, 7, 11, 17, 26), "area down, nearest up, block at 720 lines",
           _filter(_pixelate)),
    Ladder("oversharpen", "artifact", "oversharpening", (0.8, 1.5, 2.3, 3.3, 4.5), "unsharp luma amount",
           _filter(_unsharp)),
    Ladder("gblur", "blur", "defocus_blur", (0.7, 1.3, 2.2, 3.5, 5.5), "gblur sigma at 720 lines", _filter(_gblur)),
    Ladder("motion_blur", "blur", "motion_blur", (4, 8, 14, 22, 32), "horizontal box blur, px at 720 lines",
           _filter(_motion_blur)),
    Ladder("noise", "noise", "noise", (3, 6, 10, 16, 25), "noise sigma (luma; chroma half), x264 CRF 18 at <= 0.15 bpp",
           _filter(_noise, _realistic)),
    Ladder("noise_hq", "noise", "noise", (3, 6, 10, 16, 25), "noise sigma (luma; chroma half), x264 CRF 10",
           _filter(_noise)),
    Ladder("exposure_up", "color", "overexposure", (0.5, 1, 1.5, 2.2, 3), "gain in stops, clipped", _filter(_exposure)),
    Ladder("exposure_down", "color", "underexposure", (-0.5, -1, -1.5, -2.2, -3.2), "gain in stops",
           _filter(_exposure)),
    Ladder("wb_warm", "color", "color_cast", (6000, 5500, 5000, 4500, 4000), "colortemperature K",
           _filter(_temperature), fr_fair=False),
    Ladder("wb_cool", "color", "color_cast", (7000, 8000, 10000, 15000, 30000), "colortemperature K",
           _filter(_temperature), fr_fair=False),
    Ladder("wb_green", "color", "color_cast", (0.05, 0.1, 0.15, 0.22, 0.3), "colorbalance green",
           _filter(_green), fr_fair=False),
    Ladder("wb_magenta", "color", "color_cast", (-0.05, -0.1, -0.15, -0.22, -0.3), "colorbalance green",
           _filter(_green), fr_fair=False),
    Ladder("saturation_up", "color", "color_cast", (1.25, 1.5, 1.8, 2.2, 2.7), "eq saturation", _filter(_saturation),
           fr_fair=False),
    Ladder("saturation_down", "color", "color_cast", (0.8, 0.6, 0.45, 0.3, 0.15), "eq saturation",
           _filter(_saturation), fr_fair=False),
    Ladder("flicker", "temporal", "flicker", (0.015, 0.03, 0.05, 0.08, 0.12), "eq brightness swing",
           _filter(_flicker), fr_fair=False),
    Ladder("dropped", "temporal", "stutter", (0.1, 0.2, 0.35, 0.5, 0.7), "share of frames dropped (VFR)", _dropped,
           temporal=True),
    Ladder("duplicated", "temporal", "stutter", (2, 3, 4, 6, 8), "frame rate / k, frames repeated",
           _filter(_duplicated), temporal=True),
    Ladder("shake", "temporal", "jitter", (0.003, 0.006, 0.01, 0.016, 0.024), "crop offset, share of short side",
           _filter(_shake), fr_fair=False),
)


def _by_generator(cut: Cut, value: float) -> list[str]:
    raise AssertionError("a generator ladder is rendered in Python (render_generator), not by ffmpeg")


def _generator_values(name: str) -> tuple[float, ...]:
    """Five levels: the generator's own (compression has five); for a type with four, one step
    milder than any training sample first, half its mildest value (stutter, whose hold cannot be
    halved, gets a hold of 4 between its trained 3 and 5 instead)."""
    from vqscope.data.distortions import TYPES

    levels = TYPES[name].levels
    if len(levels) == LEVELS:
        return levels
    if name == "stutter":
        return tuple(sorted((*levels, 4.0)))
    return (levels[0] / 2, *levels)


def generator_ladders() -> tuple[Ladder, ...]:
    """The twelve types of the taxonomy through vqscope's own generator (`data.distortions`),
    the code the model was trained on, on the same cuts and carrier as the FFmpeg ladders. Where
    the model follows these but not FFmpeg's ladder of the same kind, what it misses is the other
    tool's look; where it misses these too, it misses its own kind of damage on this footage."""
    from vqscope.data.distortions import TYPES
    from vqscope.taxonomy import DISTORTION_TYPES

    return tuple(
        Ladder(f"gen_{name}", TYPES[name].dimension, name, _generator_values(name), f"vqscope generator, {name} at",
               _by_generator, temporal=name == "stutter", fr_fair=name not in ("color_cast", "flicker", "jitter"),
               generator=name)
        for name in DISTORTION_TYPES)


GENERATOR_LADDERS = generator_ladders()
# No damage: the untouched cut encoded again at the carrier's CRF with a slower preset. Every run
# measures it, outside all tables of ladders: how far the score moves when nothing a viewer could
# see has changed, the floor under every step of every ladder.
REENCODE = Ladder("reencode", "artifact", "compression", (10,), "x264 medium, CRF", _encode_x264_crf)
LADDER_BY_NAME = {lad.name: lad for lad in (*LADDERS, *GENERATOR_LADDERS, REENCODE)}


# -- rendering --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    cut: Cut
    ladder: str  # "" for level 0
    level: int

    @property
    def path(self) -> Path:
        folder = self.cut.path.parent
        return folder / "L0.mp4" if self.level == 0 else folder / self.ladder / f"L{self.level}.mp4"

    def command(self) -> list[str]:
        if self.level == 0:
            opts = CARRIER
        else:
            lad = LADDER_BY_NAME[self.ladder]
            opts = lad.render(self.cut, float(lad.values[self.level - 1]))
        return ["ffmpeg", "-v", "error", "-y", "-threads", "1", "-filter_threads", "1", "-i", str(self.cut.path),
                *opts, "-threads", "1", "-an"]


def render_generator(job: Job, out: Path) -> None:
    """Apply the generator's type at the ladder's value to every frame of the cut and encode it
    as the generator encodes a sample (PyAV, x264 veryfast) at the carrier's CRF 10, or at the
    level's own CRF for compression. One random stream per clip and ladder, so that every level
    of a clip gets the same tint direction, flicker wave or shake path."""
    from vqscope.data.corpus import stable_hash
    from vqscope.data.distortions import TYPES, Distorted
    from vqscope.data.encode import write_video
    from vqscope.video import VideoReader

    lad = LADDER_BY_NAME[job.ladder]
    with VideoReader(str(job.cut.path)) as reader:
        frames = [f.rgb(job.cut.width, job.cut.height) for f in reader.frames()]
    rng = np.random.default_rng([stable_hash(job.cut.name), stable_hash(lad.name)])
    d = TYPES[lad.generator].apply(Distorted(frames, crf=10), float(lad.values[job.level - 1]), rng)
    write_video(out, d.frames, job.cut.fps, codec="libx264", crf=int(d.crf), preset="veryfast")


def render(job: Job) -> tuple[Job, float]:
    if job.path.is_file():
        return job, 0.0
    job.path.parent.mkdir(parents=True, exist_ok=True)
    tmp = job.path.with_suffix(".tmp.mp4")
    t = time.perf_counter()
    if job.level and LADDER_BY_NAME[job.ladder].generator:
        render_generator(job, tmp)
    else:
        proc = subprocess.run([*job.command(), str(tmp)], check=False, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"ffmpeg failed for {job.path}: {proc.stderr[-2000:]}")
    tmp.replace(job.path)
    return job, time.perf_counter() - t


# -- measuring (in worker processes) ----------------------------------------------------------
_W: dict = {}


def _worker_init(model_name: str | None, baselines: bool, nr_frames: int) -> None:
    import torch

    torch.set_num_threads(1)
    import vqscope

    _W["model"] = vqscope.load_model(model_name) if model_name else vqscope.load_model()
    _W["nr_frames"] = nr_frames
    _W["niqe"] = _W["brisque"] = None
    _W["baseline_errors"] = {}
    if baselines:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from nr_baselines import Brisque, Niqe

        for key, make in (("niqe", Niqe), ("brisque", Brisque)):
            try:
                _W[key] = make()
            except Exception as e:  # reported, not fatal: the bench still measures the model
                _W["baseline_errors"][key] = f"{type(e).__name__}: {e}"
    _W["ref"] = {}


def _model_part(path: Path) -> dict:
    r = _W["model"].score(str(path))
    # The overall score's two halves (describe.OverallParts): the product of the dimensions, which
    # the detectors gate, and the regression on the features, which reads content too.
    clip_dims = {d: np.array([c.dimensions[d].score for c in r.clips]) for d in r.clips[0].dimensions}
    parts = _W["model"].overall_parts(clip_dims)
    return {"model": _W["model"].id, "score": r.score, "dimensions": {k: v.score for k, v in r.dimensions.items()},
            "distortions": dict(r.distortions), "clips": len(r.clips),
            "composition": parts.composition if parts else None, "regression": parts.regression if parts else None}


def _baseline_part(path: Path) -> dict:
    from vqscope.video import VideoReader

    niqe, brisque = _W["niqe"], _W["brisque"]
    out: dict = {"niqe": None, "brisque": None, "baseline_errors": _W["baseline_errors"]}
    if niqe is None and brisque is None:
        return out
    with VideoReader(str(path)) as reader:
        frames = list(reader.frames())
    pick = np.unique(np.linspace(0, len(frames) - 1, min(_W["nr_frames"], len(frames))).round().astype(int))
    n_vals, b_vals = [], []
    for i in pick:
        f = frames[i]
        if niqe is not None:
            y = f.luma().astype(np.float64)
            if not f.full_range:
                y = np.clip((y - 16.0) * (255.0 / 219.0), 0, 255)
            n_vals.append(niqe(y))
        if brisque is not None:
            w, h = f.display_size
            b_vals.append(brisque(f.rgb(w, h)))
    if n_vals and np.isfinite(n_vals).any():
        out["niqe"] = float(np.nanmean(n_vals))
    if b_vals:
        out["brisque"] = float(np.mean(b_vals))
    return out


def _reference(ref: Path):
    from vqscope.data.fr_target import luma_of_video
    from vqscope.video import VideoReader

    key = str(ref)
    if key not in _W["ref"]:
        with VideoReader(key) as r:
            size = (r.info.height, r.info.width)
            fps = r.info.fps
        half, times = luma_of_video(key, size)
        _W["ref"] = {key: (half, times, size, fps)}  # one clip at a time: jobs come clip by clip
    return _W["ref"][key]


def _match_shown(aligned, ref_half, window: int = 12) -> list[int]:
    """For each shown frame, the reference frame it most likely is (for dropped or repeated frames)."""
    import torch.nn.functional as F

    a = F.avg_pool2d(aligned, 4).flatten(1)
    r = F.avg_pool2d(ref_half, 4).flatten(1)
    n = len(r)
    shown = []
    for i in range(len(a)):
        lo, hi = max(0, i - window), min(n, i + 3)
        mse = ((r[lo:hi] - a[i]) ** 2).mean(dim=1).numpy() + 0.01 * np.abs(np.arange(lo, hi) - i)
        shown.append(lo + int(np.argmin(mse)))
    return shown


def full_reference(ref: Path, path: Path, temporal: bool) -> dict:
    """GMSD-based fidelity to level 0 (vqscope.data.fr_target): each reference frame against the
    frame a player shows at its time; frames matched to their source where frames were dropped or
    repeated, so a held frame costs what the frame-rate model says."""
    from vqscope.data.fr_target import frame_targets, luma_of_video

    ref_half, ref_t, size, fps = _reference(ref)
    if path == ref:
        return {"gmsd": 0.0, "fr": 100.0}
    half, times = luma_of_video(str(path), size)
    period = 1.0 / fps if fps > 0 else 0.04
    idx = np.searchsorted(times, ref_t + period / 2, side="right") - 1
    aligned = half[np.clip(idx, 0, len(half) - 1)]
    shown = _match_shown(aligned, ref_half) if temporal else None
    t = frame_targets(ref_half, aligned, shown=shown, fps=fps)
    return {"gmsd": float(np.mean(t["gmsd"])), "fr": float(np.mean(t["target"]))}


def measure(task: tuple[str, str, str, int, bool, bool]) -> dict:
    """Score one file (model, baselines, full reference), reusing what its cache file holds."""
    path, ref, ladder, level, temporal, want_baselines = task
    path, ref = Path(path), Path(ref)
    cache = path.with_suffix(".json")
    rec = json.loads(cache.read_text()) if cache.is_file() else {}
    t = time.perf_counter()
    if rec.get("model") != _W["model"].id:
        rec.update(_model_part(path))
    if want_baselines and rec.get("nr_frames") != _W["nr_frames"] and (_W["niqe"] or _W["brisque"]):
        rec.update(_baseline_part(path), nr_frames=_W["nr_frames"])
    if "fr" not in rec:
        rec.update(full_reference(ref, path, temporal))
    rec.update({"ladder": ladder, "level": level, "seconds": time.perf_counter() - t,
                "baseline_errors": _W["baseline_errors"]})
    tmp = cache.with_suffix(".tmp")
    tmp.write_text(json.dumps(rec))
    tmp.replace(cache)
    return rec


# -- statistics -------------------------------------------------------------------------------
def kendall(x, y) -> float:
    from scipy.stats import kendalltau

    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.ptp(y[ok]) == 0:
        return float("nan")
    return float(kendalltau(x[ok], y[ok]).statistic)


def spearman(x, y) -> float:
    from scipy.stats import spearmanr

    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return float("nan")
    return float(spearmanr(x[ok], y[ok]).statistic)


def auc(pos, neg) -> float:
    pos, neg = np.asarray(pos, float), np.asarray(neg, float)
    if not len(pos) or not len(neg):
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def nanmean(values) -> float:
    v = np.asarray([x for x in values if x is not None], float)
    v = v[np.isfinite(v)]
    return float(v.mean()) if len(v) else float("nan")


def value_of(rec: dict, what: str, dimension: str | None = None) -> float:
    """A measurement of a record on one scale where higher is better (NIQE, BRISQUE negated)."""
    if what == "score":
        return rec["score"]
    if what == "dimension":
        return rec["dimensions"][dimension]
    if what in ("niqe", "brisque"):
        v = rec.get(what)
        return float("nan") if v is None else -v
    if what == "fr":
        return rec["fr"]
    raise ValueError(what)


def ladder_records(by_level: dict, lad: Ladder, levels: list[int]) -> list[dict | None]:
    """One clip's records along a ladder: untouched first, then each level (None where missing)."""
    return [by_level.get((lad.name if k else "", k)) for k in [0] + levels]


def ladder_table(records: dict, ladders: list[Ladder], levels: list[int]) -> list[dict]:
    """Per ladder: tau of level against each measure (mean over clips), first-level and top-level
    moves of the score, and the rank agreement of score drops with full-reference drops."""
    rows = []
    for lad in ladders:
        taus: dict[str, list[float]] = {k: [] for k in ("score", "dimension", "niqe", "brisque", "fr")}
        first, second, top, top_fr, first_up = [], [], [], [], 0
        drops, fr_drops, niqe_up, brisque_up = [], [], [], []
        profile = {k: [] for k in [0] + levels}
        fr_profile = {k: [] for k in [0] + levels}
        for by_level in records.values():
            recs = ladder_records(by_level, lad, levels)
            if any(r is None for r in recs):
                continue
            lv = [0] + levels
            for k in taus:
                taus[k].append(kendall(lv, [value_of(r, k, lad.dimension) for r in recs]))
            base = recs[0]
            for k, r in zip(lv, recs):
                profile[k].append(r["score"])
                fr_profile[k].append(r["fr"])
            first.append(recs[1]["score"] - base["score"])
            first_up += recs[1]["score"] > base["score"]
            if len(recs) > 2:
                second.append(recs[2]["score"] - base["score"])
            top.append(recs[-1]["score"] - base["score"])
            top_fr.append(recs[-1]["fr"] - base["fr"])
            for r in recs[1:]:
                drops.append(base["score"] - r["score"])
                fr_drops.append(base["fr"] - r["fr"])
                niqe_up.append(_delta(r, base, "niqe"))
                brisque_up.append(_delta(r, base, "brisque"))
        n = len(first)
        rows.append({
            "ladder": lad.name, "what": lad.describe(), "dimension": lad.dimension, "type": lad.kind, "clips": n,
            **{f"tau_{k}": nanmean(v) for k, v in taus.items()},
            "tau_score_per_clip": taus["score"],
            "first_minus_untouched": nanmean(first), "first_up_clips": int(first_up),
            "second_minus_untouched": nanmean(second), "top_minus_untouched": nanmean(top),
            "top_fr_minus_untouched": nanmean(top_fr),
            "mean_score_by_level": {str(k): nanmean(v) for k, v in profile.items()},
            "mean_fr_by_level": {str(k): nanmean(v) for k, v in fr_profile.items()},
            "spearman_drop_fr": spearman(drops, fr_drops),
            "spearman_niqe_fr": spearman(niqe_up, fr_drops),
            "spearman_brisque_fr": spearman(brisque_up, fr_drops),
        })
    return rows


def _delta(r: dict, base: dict, key: str) -> float:
    a, b = r.get(key), base.get(key)
    return float("nan") if a is None or b is None else a - b


def pooled_drops(records: dict, ladders: list[Ladder], levels: list[int], fair_only: bool) -> dict:
    """Spearman of drops with full-reference drops, pooled over ladders and clips."""
    d: dict[str, list[float]] = {"score": [], "niqe": [], "brisque": [], "fr": []}
    for lad in ladders:
        if fair_only and not lad.fr_fair:
            continue
        for by_level in records.values():
            base = by_level.get(("", 0))
            for k in levels:
                r = by_level.get((lad.name, k))
                if base is None or r is None:
                    continue
                d["score"].append(base["score"] - r["score"])
                d["niqe"].append(_delta(r, base, "niqe"))
                d["brisque"].append(_delta(r, base, "brisque"))
                d["fr"].append(base["fr"] - r["fr"])
    return {"files": len(d["fr"]), "score": spearman(d["score"], d["fr"]),
            "niqe": spearman(d["niqe"], d["fr"]), "brisque": spearman(d["brisque"], d["fr"])}


STEP_BINS = ((0, 5), (5, 10), (10, 20), (20, 101))


def step_table(records: dict, ladders: list[Ladder], levels: list[int]) -> list[dict]:
    """Steps from one level to the next on the ladders the FR measure judges fairly, grouped by
    how much FR falls across the step: how far the score falls, and how often it rises instead.
    A ladder's tau can only reach -1 where the score never rises across a step."""
    steps = []
    for lad in ladders:
        if not lad.fr_fair:
            continue
        for by_level in records.values():
            seq = ladder_records(by_level, lad, levels)
            if any(r is None for r in seq):
                continue
            steps += [(a["fr"] - b["fr"], a["score"] - b["score"]) for a, b in zip(seq, seq[1:])]
    rows = []
    for lo, hi in STEP_BINS:
        falls = [ds for dfr, ds in steps if lo <= dfr < hi]
        rows.append({"fr_fall": f"{lo}-{hi}" if hi <= 100 else f"over {lo}", "steps": len(falls),
                     "mean_score_fall": nanmean(falls), "share_rising": float(np.mean([d < 0 for d in falls])) if falls else float("nan")})
    return rows


def near_invisible(records: dict, ladders: list[Ladder], levels: list[int], fr_at_least: float = 95.0) -> dict:
    """How far the score moves on damaged files the FR measure rates `fr_at_least` or more (barely
    visible), on the ladders it judges fairly: the score's wander under changes hard to see."""
    fair = {lad.name for lad in ladders if lad.fr_fair}
    moves = [r["score"] - by[("", 0)]["score"] for by in records.values() if ("", 0) in by
             for (lad, k), r in by.items() if k and lad in fair and r["fr"] >= fr_at_least]
    a = np.abs(moves)
    return {"fr_at_least": fr_at_least, "files": len(moves),
            "median_abs_move": float(np.median(a)) if len(a) else float("nan"),
            "p90_abs_move": float(np.percentile(a, 90)) if len(a) else float("nan")}


def reencoded(records: dict) -> dict:
    """How far the score moves between the untouched cut and the same cut encoded again (REENCODE)."""
    pairs = [(by[("", 0)], by[(REENCODE.name, 1)]) for by in records.values()
             if ("", 0) in by and (REENCODE.name, 1) in by]
    moves = np.abs([r["score"] - base["score"] for base, r in pairs])
    return {"files": len(pairs), "median_abs_move": float(np.median(moves)) if len(moves) else float("nan"),
            "max_abs_move": float(moves.max()) if len(moves) else float("nan"),
            "mean_fr": nanmean([r["fr"] for _, r in pairs])}


def halves_as_score(records: dict, ladders: list[Ladder], levels: list[int]) -> dict:
    """The bench's headline figures with each half of the overall score (product, regression)
    standing in for the score: what a model without the other half would have done here."""
    out = {}
    for half in ("composition", "regression"):
        if any(r.get(half) is None for by in records.values() for r in by.values()):
            continue
        swapped = {c: {k: dict(r, score=r[half]) for k, r in by.items()} for c, by in records.items()}
        rows = ladder_table(swapped, ladders, levels)
        out[half] = {"tau_score": nanmean([r["tau_score"] for r in rows]),
                     "score_le_-0.9": sum(r["tau_score"] <= -0.9 for r in rows),
                     "first_level_raises": [r["ladder"] for r in rows if r["first_minus_untouched"] > 0],
                     "pooled": pooled_drops(swapped, ladders, levels, fair_only=False)["score"],
                     "untouched_mean": nanmean([by[("", 0)][half] for by in records.values() if ("", 0) in by]),
                     "steps_rising": [r["share_rising"] for r in step_table(swapped, ladders, levels)],
                     "near_invisible": near_invisible(swapped, ladders, levels),
                     "by_ladder": {r["ladder"]: {"tau": r["tau_score"], "first": r["first_minus_untouched"]} for r in rows}}
    return out


def type_table(records: dict, ladders: list[Ladder], levels: list[int]) -> list[dict]:
    """Per distortion type: AUC of its probability against untouched files, and recall at 0.5."""
    untouched = [r for by in records.values() for (lad, k), r in by.items() if k == 0]
    strong = [k for k in levels if k in STRONG] or levels[-1:]
    rows = []
    for kind in dict.fromkeys(lad.kind for lad in ladders):
        mine = [lad.name for lad in ladders if lad.kind == kind]
        neg = [r["distortions"][kind] for r in untouched]
        pos_all = [r["distortions"][kind] for by in records.values() for (lad, k), r in by.items()
                   if lad in mine and k in levels]
        pos_strong = [r["distortions"][kind] for by in records.values() for (lad, k), r in by.items()
                      if lad in mine and k in strong]
        rows.append({"type": kind, "ladders": mine, "files": len(pos_all), "auc_all": auc(pos_all, neg),
                     "auc_strong": auc(pos_strong, neg),
                     "recall_strong": float(np.mean(np.asarray(pos_strong) >= 0.5)) if pos_strong else float("nan"),
                     "mean_p_strong": nanmean(pos_strong), "mean_p_untouched": nanmean(neg),
                     "untouched_named": int(np.sum(np.asarray(neg) >= 0.5))})
    return rows


def recall_by_ladder(records: dict, ladders: list[Ladder], levels: list[int]) -> dict[str, float]:
    strong = [k for k in levels if k in STRONG] or levels[-1:]
    out = {}
    for lad in ladders:
        p = [r["distortions"][lad.kind] for by in records.values() for (name, k), r in by.items()
             if name == lad.name and k in strong]
        out[lad.name] = float(np.mean(np.asarray(p) >= 0.5)) if p else float("nan")
    return out


def score_originals(model, footage: list[Footage], work: Path) -> list[dict]:
    """The footage files themselves, whole and at their own size, as the model card scores them:
    what the model names on video nobody damaged, before any cutting or re-encoding."""
    rows = []
    for f in footage:
        cache = work / "clips" / f.name / "original.json"
        rec = json.loads(cache.read_text()) if cache.is_file() else {}
        if rec.get("model") != model.id:
            r = model.score(f.path)
            rec = {"model": model.id, "score": r.score, "size": f"{r.width}x{r.height}", "seconds": r.duration_s,
                   "distortions": dict(r.distortions)}
            cache.write_text(json.dumps(rec))
        named = {t: p for t, p in sorted(rec["distortions"].items(), key=lambda kv: -kv[1]) if p >= 0.5}
        rows.append({"clip": f.name, "size": rec["size"], "seconds": rec["seconds"], "score": rec["score"], "named": named})
    return rows


def untouched_table(records: dict, cuts: dict[str, Cut]) -> list[dict]:
    rows = []
    for clip, by in records.items():
        r = by.get(("", 0))
        if r is None:
            continue
        named = {t: p for t, p in sorted(r["distortions"].items(), key=lambda kv: -kv[1]) if p >= 0.5}
        c = cuts[clip]
        rows.append({"clip": clip, "size": f"{c.width}x{c.height}", "fps": float(c.fps), "score": r["score"],
                     "dimensions": r["dimensions"], "named": named, "niqe": r.get("niqe"), "brisque": r.get("brisque")})
    return rows


# -- report -----------------------------------------------------------------------------------
def fmt(x, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:+.{digits}f}" if digits and isinstance(x, float) and x < 0 else f"{x:.{digits}f}"


def markdown(summary: dict) -> str:
    lines = ["### Footage", "", "| clip | size | fps | frames | origin |", "| --- | --- | --- | --- | --- |"]
    for f in summary["footage"]:
        lines.append(f"| {f['clip']} | {f['size']} | {f['fps']:.3g} | {f['frames']} | {f['origin']} |")
    lines += ["", "### Ladders", "",
              "Kendall tau between level (0 = untouched, then 1-5) and each measure, mean over clips (-1: every "
              "step down is seen; NIQE and BRISQUE negated so that -1 is ideal for all); score change at level 1 "
              "and 2 and at the strongest level against untouched (mean over clips; 'up' counts clips where level 1 "
              "scores higher than untouched); full-reference (FR) change at the strongest level; Spearman of "
              "score drops with FR drops over the ladder's damaged files; recall of the ladder's type at p >= 0.5 "
              "on its stronger half.", "",
              "| ladder | levels | dimension | tau score | tau dimension | tau NIQE | tau BRISQUE | tau FR | "
              "level 1 | up | level 2 | strongest | FR strongest | drops vs FR | type | recall |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in summary["ladders"]:
        lines.append(
            f"| {r['ladder']} | {r['what']} | {r['dimension']} | {fmt(r['tau_score'])} | {fmt(r['tau_dimension'])} | "
            f"{fmt(r['tau_niqe'])} | {fmt(r['tau_brisque'])} | {fmt(r['tau_fr'])} | {fmt(r['first_minus_untouched'], 1)} | "
            f"{r['first_up_clips']}/{r['clips']} | {fmt(r['second_minus_untouched'], 1)} | "
            f"{fmt(r['top_minus_untouched'], 1)} | {fmt(r['top_fr_minus_untouched'], 1)} | "
            f"{fmt(r['spearman_drop_fr'])} | {r['type']} | {fmt(summary['recall_by_ladder'][r['ladder']])} |")
    lines += ["", "The overall score is the mean of two halves (`describe.OverallParts`): the product of the five "
              "dimensions, which the detectors gate, and a regression on the features, which is not gated and "
              "reads content too. Kendall tau of each half against level, and its change at level 1 (mean over "
              "clips; half of it reaches the score):", "",
              "| ladder | tau product | tau regression | level 1: product | level 1: regression |",
              "| --- | --- | --- | --- | --- |"]
    halves = summary.get("halves_as_score", {})
    for r in summary["ladders"]:
        part = {h: halves.get(h, {}).get("by_ladder", {}).get(r["ladder"], {}) for h in ("composition", "regression")}
        lines.append(f"| {r['ladder']} | {fmt(part['composition'].get('tau'))} | {fmt(part['regression'].get('tau'))} | "
                     f"{fmt(part['composition'].get('first'), 1)} | {fmt(part['regression'].get('first'), 1)} |")
    names = {"composition": "the product alone", "regression": "the regression alone"}
    for half, h in halves.items():
        lines.append(f"\nWith {names[half]} as the score: mean tau {fmt(h['tau_score'])}, tau <= -0.9 on "
                     f"{h['score_le_-0.9']}/{len(summary['ladders'])} ladders, level 1 raises it on "
                     f"{len(h['first_level_raises'])} ({', '.join(h['first_level_raises']) or 'none'}), pooled "
                     f"agreement of drops with FR {fmt(h['pooled'])}, untouched mean {h['untouched_mean']:.1f}; "
                     f"it rises on {', '.join(fmt(x) for x in h['steps_rising'])} of the steps by FR fall below, and "
                     f"barely visible damage moves it {fmt(h['near_invisible']['median_abs_move'], 1)} points in the median.")
    lines += ["", "Steps from one level to the next on the ladders the FR measure judges fairly, by how much FR "
              "falls across the step (a ladder's tau reaches -1 only where the score never rises across one):", "",
              "| FR fall across the step | steps | mean score fall | steps where the score rises |",
              "| --- | --- | --- | --- |"]
    for r in summary.get("steps", []):
        lines.append(f"| {r['fr_fall']} | {r['steps']} | {fmt(r['mean_score_fall'], 1)} | {fmt(r['share_rising'])} |")
    if "near_invisible" in summary:
        n = summary["near_invisible"]
        lines += ["", f"Damaged files the FR measure rates {n['fr_at_least']:g} or more (barely visible; {n['files']} files) "
                  f"move the score by {fmt(n['median_abs_move'], 1)} points in the median, {fmt(n['p90_abs_move'], 1)} at "
                  "the 90th percentile."]
    if summary.get("reencoded", {}).get("files"):
        n = summary["reencoded"]
        lines += ["", f"The untouched cut encoded again with nothing changed (x264 medium instead of veryfast, both CRF 10; "
                  f"FR {n['mean_fr']:.1f}; {n['files']} files) moves the score by {fmt(n['median_abs_move'], 2)} points in the "
                  f"median, {fmt(n['max_abs_move'], 2)} at most."]
    levels = [0] + summary["levels"]
    lines += ["", "Mean score by level (over clips), and below it the full-reference measure (0-100, level 0 = 100):", "",
              "| ladder | " + " | ".join(f"level {k}" for k in levels) + " |", "| --- |" + " --- |" * len(levels)]
    for r in summary["ladders"]:
        s, f = r["mean_score_by_level"], r["mean_fr_by_level"]
        lines.append(f"| {r['ladder']} | " + " | ".join(f"{s[str(k)]:.1f} ({f[str(k)]:.0f})" for k in levels) + " |")
    m = summary["means"]
    lines += ["", f"Mean over ladders: tau score {fmt(m['tau_score'])}, tau dimension {fmt(m['tau_dimension'])}, "
              f"tau NIQE {fmt(m['tau_niqe'])}, tau BRISQUE {fmt(m['tau_brisque'])}; ladders with tau score <= -0.9: "
              f"{m['score_le_-0.9']}/{m['ladders']}, tau dimension <= -0.9: {m['dimension_le_-0.9']}/{m['ladders']}; "
              f"ladders whose level 1 scores above untouched on average: {m['first_level_raises']}.", ""]
    lines += ["### Distortion types", "",
              "ROC AUC of the type's probability: the ladders' damaged files against the untouched ones, all "
              "levels and the stronger half (levels 3-5); recall at p >= 0.5 on the stronger half; mean "
              "probability on the stronger half and on untouched files; untouched files that name the type.", "",
              "| type | ladders | AUC all | AUC stronger half | recall stronger half | mean p stronger | "
              "mean p untouched | untouched naming it |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in summary["types"]:
        lines.append(f"| {r['type']} | {', '.join(r['ladders'])} | {fmt(r['auc_all'])} | {fmt(r['auc_strong'])} | "
                     f"{fmt(r['recall_strong'])} | {fmt(r['mean_p_strong'])} | {fmt(r['mean_p_untouched'])} | "
                     f"{r['untouched_named']}/{summary['untouched_files']} |")
    lines += ["", "### Untouched clips (level 0)", "",
              "| clip | size | score | color | noise | artifact | blur | temporal | types at p >= 0.5 | NIQE | BRISQUE |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in summary["untouched"]:
        d = r["dimensions"]
        named = ", ".join(f"{t} {p:.2f}" for t, p in r["named"].items()) or "none"
        lines.append(f"| {r['clip']} | {r['size']} | {r['score']:.1f} | {d['color']:.1f} | {d['noise']:.1f} | "
                     f"{d['artifact']:.1f} | {d['blur']:.1f} | {d['temporal']:.1f} | {named} | "
                     f"{fmt(r['niqe'])} | {fmt(r['brisque'])} |")
    fa, fo = summary["false_alarms"], summary["false_alarms_originals"]
    lines += ["", f"Types named per untouched cut (p >= 0.5): **{fa['per_video']:.2f}** "
              f"({fa['total']} over {fa['videos']} videos: "
              + (", ".join(f"{t} {n}" for t, n in fa["by_type"].items()) or "none") + ").", ""]
    if summary["originals"]:
        lines += ["The footage files themselves, whole and at their own size (nothing cut or re-encoded):", "",
                  "| file | size | seconds | score | types at p >= 0.5 |", "| --- | --- | --- | --- | --- |"]
        for r in summary["originals"]:
            named = ", ".join(f"{t} {p:.2f}" for t, p in r["named"].items()) or "none"
            lines.append(f"| {r['clip']} | {r['size']} | {r['seconds']:.1f} | {r['score']:.1f} | {named} |")
        lines += ["", f"Types named per original file: **{fo['per_video']:.2f}** ({fo['total']} over {fo['videos']}: "
                  + (", ".join(f"{t} {n}" for t, n in fo["by_type"].items()) or "none") + ").", ""]
    p, q = summary["pooled"], summary["pooled_fr_fair"]
    lines += ["### Score drops against the full-reference measure", "",
              "Spearman correlation between each measure's drop (untouched minus damaged; for NIQE and BRISQUE, "
              "their rise) and the FR drop, over every damaged file:", "",
              "| pooled over | files | vqscope score | NIQE | BRISQUE |", "| --- | --- | --- | --- | --- |",
              f"| all ladders | {p['files']} | {fmt(p['score'])} | {fmt(p['niqe'])} | {fmt(p['brisque'])} |",
              f"| ladders the FR measure judges fairly ({', '.join(summary['fr_unfair']) or 'all'} left out) | "
              f"{q['files']} | {fmt(q['score'])} | "
              f"{fmt(q['niqe'])} | {fmt(q['brisque'])} |", ""]
    if summary.get("baseline_errors"):
        lines += ["Baselines that could not run: " + "; ".join(f"{k}: {v}" for k, v in summary["baseline_errors"].items()), ""]
    return "\n".join(lines)


def false_alarms(rows: list[dict]) -> dict:
    by_type: dict[str, int] = {}
    for r in rows:
        for t in r["named"]:
            by_type[t] = by_type.get(t, 0) + 1
    total = sum(by_type.values())
    return {"videos": len(rows), "total": total, "per_video": total / len(rows) if rows else float("nan"),
            "by_type": dict(sorted(by_type.items(), key=lambda kv: -kv[1]))}


def summarise(records: dict, cuts: dict[str, Cut], ladders: list[Ladder], levels: list[int], errors: dict,
              originals: list[dict]) -> dict:
    lrows = ladder_table(records, ladders, levels)
    untouched = untouched_table(records, cuts)
    return {
        "footage": [{"clip": c.name, "size": f"{c.width}x{c.height}", "fps": float(c.fps), "frames": c.frames,
                     "origin": c.origin} for c in cuts.values()],
        "levels": levels,
        "ladders": lrows,
        "recall_by_ladder": recall_by_ladder(records, ladders, levels),
        "means": {
            "ladders": len(lrows),
            **{f"tau_{k}": nanmean([r[f"tau_{k}"] for r in lrows]) for k in ("score", "dimension", "niqe", "brisque")},
            "score_le_-0.9": sum(r["tau_score"] <= -0.9 for r in lrows),
            "dimension_le_-0.9": sum(r["tau_dimension"] <= -0.9 for r in lrows),
            "first_level_raises": ", ".join(r["ladder"] for r in lrows if r["first_minus_untouched"] > 0) or "none",
        },
        "types": type_table(records, ladders, levels),
        "untouched": untouched,
        "untouched_files": len(untouched),
        "false_alarms": false_alarms(untouched),
        "originals": originals,
        "false_alarms_originals": false_alarms(originals),
        "fr_unfair": [lad.name for lad in ladders if not lad.fr_fair],
        "pooled": pooled_drops(records, ladders, levels, fair_only=False),
        "pooled_fr_fair": pooled_drops(records, ladders, levels, fair_only=True),
        "steps": step_table(records, ladders, levels),
        "near_invisible": near_invisible(records, ladders, levels),
        "reencoded": reencoded(records),
        "halves_as_score": halves_as_score(records, ladders, levels),
        "baseline_errors": errors,
    }


# -- driver -----------------------------------------------------------------------------------
def pick(items: list, spec: str | None, name: Callable) -> list:
    """All items, the first N (a number), or those matching comma-separated names or patterns."""
    if not spec:
        return items
    if spec.isdigit():
        return items[: int(spec)]
    pats = [p.strip() for p in spec.split(",") if p.strip()]
    chosen = [it for it in items if any(fnmatch.fnmatchcase(name(it), p) for p in pats)]
    if not chosen:
        raise SystemExit(f"nothing matches {spec!r} among: {', '.join(name(it) for it in items)}")
    return chosen


def parse_levels(spec: str) -> list[int]:
    levels = sorted({int(x) for x in spec.split(",") if x.strip()})
    if not levels or levels[0] < 1 or levels[-1] > LEVELS:
        raise SystemExit(f"--levels takes level numbers 1-{LEVELS}, e.g. 1,3,5")
    return levels


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work-dir", default=str(ROOT / ".cache" / "real_damage"),
                    help="cuts, renders and per-file measurements are cached here")
    ap.add_argument("--media", default=str(MEDIA), help="folder of real clips (kinetics_*, konvid_*, ugc_*)")
    ap.add_argument("--no-held-out", action="store_true",
                    help="leave out the training pool's held-out videos (fetched with apt-get download)")
    ap.add_argument("--clips", help="a number (the first N) or comma-separated clip names or patterns")
    ap.add_argument("--ladders", help="comma-separated ladder names or patterns (default: all)")
    ap.add_argument("--levels", default="1,2,3,4,5", help="levels to render besides 0 (default: 1,2,3,4,5)")
    ap.add_argument("--seconds", type=float, default=3.0, help="length of each cut (default 3)")
    ap.add_argument("--max-side", type=int, default=768, help="long side of each cut at most (default 768)")
    ap.add_argument("--model", help="model name or file (default: the shipped default)")
    ap.add_argument("--no-baselines", action="store_true", help="skip NIQE and BRISQUE")
    ap.add_argument("--nr-frames", type=int, default=4, help="frames per file for NIQE and BRISQUE (default 4)")
    ap.add_argument("--jobs", type=int, default=2, help="parallel ffmpeg renders and measuring processes")
    ap.add_argument("--json", help="write every record and table here")
    ap.add_argument("--markdown", help="also write the tables here")
    ap.add_argument("--generator", action="store_true",
                    help="ladders of vqscope's own generator (gen_*) instead of FFmpeg's, on the same cuts")
    ap.add_argument("--list", action="store_true", help="list clips and ladders, then exit")
    args = ap.parse_args(argv)
    if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
        print("real_damage: ffmpeg and ffprobe are needed (Debian: apt-get install ffmpeg)", file=sys.stderr)
        return 2
    started = time.perf_counter()
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    levels = parse_levels(args.levels)
    family = GENERATOR_LADDERS if args.generator else LADDERS
    ladders = pick(list(family), args.ladders, lambda lad: lad.name)

    import vqscope

    model = vqscope.load_model(args.model) if args.model else vqscope.load_model()
    footage = media_footage(Path(args.media)) if Path(args.media).is_dir() else []
    if not args.no_held_out:
        footage += held_out_footage(model, work / "sources")
    footage = pick(footage, args.clips, lambda f: f.name)
    if args.list:
        for f in footage:
            print(f"clip   {f.name}: {f.origin}")
        for lad in family:
            print(f"ladder {lad.name}: {lad.describe()} -> {lad.dimension}, {lad.kind}")
        return 0
    if not footage:
        print("real_damage: no footage (neither --media nor the held-out videos)", file=sys.stderr)
        return 2

    t = time.perf_counter()
    cuts = {f.name: make_cut(f, work, args.seconds, args.max_side) for f in footage}
    jobs = [Job(c, "", 0) for c in cuts.values()]
    jobs += [Job(c, lad.name, k) for c in cuts.values() for lad in ladders for k in levels]
    jobs += [Job(c, REENCODE.name, 1) for c in cuts.values()]
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        rendered = list(pool.map(render, jobs))
    render_s = time.perf_counter() - t
    print(f"rendered {sum(1 for _, s in rendered if s > 0)} new of {len(jobs)} files in {render_s:.0f} s", file=sys.stderr)

    t = time.perf_counter()
    tasks = [(str(j.path), str(j.cut.path.parent / "L0.mp4"), j.ladder, j.level,
              bool(j.ladder and LADDER_BY_NAME[j.ladder].temporal), not args.no_baselines) for j in jobs]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(max(1, args.jobs), initializer=_worker_init,
                  initargs=(args.model, not args.no_baselines, args.nr_frames)) as pool:
        recs = pool.map(measure, tasks, chunksize=4)
    measure_s = time.perf_counter() - t
    print(f"measured {len(recs)} files in {measure_s:.0f} s", file=sys.stderr)

    records: dict[str, dict] = {c: {} for c in cuts}
    errors: dict = {}
    for job, rec in zip(jobs, recs):
        records[job.cut.name][(job.ladder, job.level)] = rec
        errors.update(rec.get("baseline_errors") or {})
    originals = score_originals(model, footage, work)
    summary = summarise(records, cuts, ladders, levels, errors, originals)
    summary["model"] = model.id
    summary["command"] = " ".join(["python", "bench/real_damage.py", *(argv if argv is not None else sys.argv[1:])])
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    summary["seconds"] = {"render": render_s, "measure": measure_s, "total": time.perf_counter() - started,
                          "cpu": sum(u.ru_utime + u.ru_stime for u in usage)}
    text = markdown(summary)
    print(text)
    print(f"\nmodel {model.id}; {len(jobs)} files; render {render_s:.0f} s, measure {measure_s:.0f} s, "
          f"total {summary['seconds']['total']:.0f} s wall, {summary['seconds']['cpu']:.0f} s CPU")
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    if args.json:
        summary["records"] = [{"clip": j.cut.name, **r} for j, r in zip(jobs, recs)]
        Path(args.json).write_text(json.dumps(summary, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
