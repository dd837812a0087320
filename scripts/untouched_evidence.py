"""What the bench's untouched footage itself carries, measured as the generator's damage is.

    python scripts/untouched_evidence.py --work-dir WORK   # WORK: bench/real_damage.py's --work-dir,
                                                           # after a run with and one without --generator

bench/real_damage.py counts every type the model names on an untouched cut (level 0) as a false
alarm. The cuts are real uploads and sample videos, not pristine masters, so some of those names
may be true of the footage. This script measures, on each untouched cut, the property behind each
type the model named there, the same way on the generator's own renders of that type on the other
cuts (`gen_*` ladders, level 2 = the generator's mildest trained level), so that a cut can be
placed against the mildest damage the model learnt to name:

* repeated frames (stutter): share of consecutive frames whose mean absolute luma difference is
  under 0.5 of 255;
* shake (jitter): global shift between consecutive frames by phase correlation (scikit-image),
  then the root mean square change of that shift from one frame pair to the next, in thousandths
  of the short side: a pan is smooth and scores low, shake is jerky and scores high (so does
  fast motion of objects that fill much of a small picture: a high value supports shake only
  where the picture moves as a whole);
* blur (defocus blur): the blur-reblur measure of Crete-Roffet et al. (2007), scikit-image's
  `blur_effect` (0 sharp, 1 flat), mean of four frames; content moves it too (flat scenes read
  blurred), and it barely sees the generator's mildest blur, so it only ranks the cuts;
* bits per pixel per frame of the original file (compression), from its stream bit rate; the
  bench's `x264_bitrate` ladder is graded in the same unit.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from vqscope.errors import VQScopeError
from vqscope.video import VideoReader

ROOT = Path(__file__).resolve().parents[1]
GEN_TYPES = ("stutter", "jitter", "defocus_blur")


def luma_frames(path: Path, limit: int = 90) -> list[np.ndarray]:
    out = []
    with VideoReader(path) as reader:
        for i, f in enumerate(reader.frames()):
            if i >= limit:
                break
            out.append(f.luma().astype(np.float64))
    return out


def measure(path: Path) -> dict[str, float]:
    from skimage.measure import blur_effect
    from skimage.registration import phase_cross_correlation

    y = luma_frames(path)
    diffs = [float(np.abs(b - a).mean()) for a, b in zip(y, y[1:])]
    shifts = []
    for a, b in zip(y, y[1:]):
        s, _, _ = phase_cross_correlation(a[::2, ::2], b[::2, ::2], upsample_factor=10, normalization=None)
        shifts.append(2.0 * np.asarray(s))
    jerk = np.diff(np.asarray(shifts), axis=0)
    short = min(y[0].shape)
    pick = np.linspace(0, len(y) - 1, 4).round().astype(int)
    return {
        "repeated": float(np.mean(np.asarray(diffs) < 0.5)),
        "shake": float(1000 * np.sqrt(np.mean((jerk**2).sum(axis=1))) / short),
        "blur": float(np.mean([blur_effect(y[i]) for i in pick])),
    }


def bits_per_pixel(path: Path) -> float | None:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "stream=width,height,avg_frame_rate,bit_rate:format=bit_rate,duration,size", "-of", "json",
                          str(path)], check=True, capture_output=True, text=True)
    data = json.loads(out.stdout)
    s, f = data["streams"][0], data.get("format", {})
    num, den = (int(x) for x in s["avg_frame_rate"].split("/"))
    rate = s.get("bit_rate") or f.get("bit_rate")
    if not rate or not den or not num:
        return None
    return float(rate) / (int(s["width"]) * int(s["height"]) * num / den)


def original(name: str, media: Path, work: Path) -> Path | None:
    stem = name.removeprefix("heldout_")
    for folder in (media, work / "sources"):
        for p in sorted(folder.rglob("*")) if folder.is_dir() else []:
            if p.is_file() and p.stem == stem and p.suffix in (".mp4", ".mpg", ".mkv", ".webm", ".avi", ".mov"):
                return p
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work-dir", required=True)
    ap.add_argument("--media", default=str(ROOT.parent / "shared" / "media"))
    ap.add_argument("--json", help="also write the measurements here")
    args = ap.parse_args()
    work = Path(args.work_dir)
    clips = sorted(p for p in (work / "clips").iterdir() if (p / "L0.mp4").is_file()) if (work / "clips").is_dir() else []
    if not clips:
        print(f"untouched_evidence: no bench clips under {work}/clips (run bench/real_damage.py first)", file=sys.stderr)
        return 2
    rows = {}
    try:
        for clip in clips:
            row = {"untouched": measure(clip / "L0.mp4")}
            src = original(clip.name, Path(args.media), work)
            row["bpp_original"] = bits_per_pixel(src) if src else None
            for t in GEN_TYPES:
                f = clip / f"gen_{t}" / "L2.mp4"
                if f.is_file():
                    row[f"gen_{t}"] = measure(f)
            rows[clip.name] = row
    except (VQScopeError, subprocess.CalledProcessError) as exc:
        # A file the bench wrote and cannot be read: its cache is damaged, and a median without
        # that clip would say something else. Delete the file and let the bench render it again.
        print(f"untouched_evidence: {exc}", file=sys.stderr)
        return 2
    print("| clip | repeated | shake (per mille) | blur | original bpp |")
    print("| --- | --- | --- | --- | --- |")
    for name, r in rows.items():
        u = r["untouched"]
        bpp = "n/a" if r["bpp_original"] is None else f"{r['bpp_original']:.3f}"
        print(f"| {name} | {u['repeated']:.2f} | {u['shake']:.2f} | {u['blur']:.3f} | {bpp} |")
    have = [r for r in rows.values() if all(f"gen_{t}" in r for t in GEN_TYPES)]
    if have:
        print(f"\nthe generator's mildest trained level on the same cuts (median over {len(have)} clips):")
        for t, key in (("stutter", "repeated"), ("jitter", "shake"), ("defocus_blur", "blur")):
            vals = [r[f"gen_{t}"][key] for r in have]
            base = [r["untouched"][key] for r in have]
            print(f"- {t}: {key} {np.median(vals):.3f} (untouched {np.median(base):.3f})")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
