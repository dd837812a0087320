"""How far the bench's white-balance ladders move colour, against the generator's tints.

    python scripts/cast_chroma.py --work-dir WORK      # WORK: bench/real_damage.py's --work-dir

For each colour ladder of bench/real_damage.py, the change of log(R/G) and log(B/G) of the channel
means against level 0 (six frames at 384x216 a file, mean over clips), over the whole picture and
apart in shadows (luma < 60), midtones and highlights (>= 180); then the same ratios for the tints
of `vqscope synth`'s colour cast (a gain per channel on every pixel) at its four levels. Used in
docs/accuracy.md to say whether a missed cast lies outside what training showed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from vqscope.video import VideoReader

LADDERS = ("wb_warm", "wb_cool", "wb_green", "wb_magenta")
TONES = (("shadows", 0, 60), ("midtones", 60, 180), ("highlights", 180, 256))
# data/distortions.py's _color_cast tints: a gain 1 + strength * t per channel (R, G, B).
TINTS = {"warm": (1.0, 0.15, -1.0), "cool": (-1.0, 0.1, 1.0), "green": (-0.5, 1.0, -0.5), "magenta": (0.7, -1.0, 0.7)}
STRENGTHS = (0.08, 0.16, 0.26, 0.38)


def frames(path: Path, n: int = 6) -> np.ndarray:
    out = []
    with VideoReader(path) as reader:
        for i, f in enumerate(reader.frames()):
            if i % 10 == 0:
                out.append(f.rgb(384, 216).astype(np.float64))
            if len(out) >= n:
                break
    return np.stack(out)


def shift(x: np.ndarray, ref: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    if mask.sum() < 50:
        return float("nan"), float("nan")
    c, c0 = np.log(x[mask].mean(0) + 1), np.log(ref[mask].mean(0) + 1)
    return (c[0] - c[1]) - (c0[0] - c0[1]), (c[2] - c[1]) - (c0[2] - c0[1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work-dir", required=True)
    ap.add_argument("--level", type=int, default=5)
    args = ap.parse_args()
    clips = sorted(p for p in (Path(args.work_dir) / "clips").iterdir() if (p / "L0.mp4").is_file())
    if not clips:
        print(f"error: no bench clips under {args.work_dir}/clips")
        return 2
    print(f"bench level {args.level} against level 0, mean over {len(clips)} clips: d log R/G, d log B/G")
    for ladder in LADDERS:
        rows = []
        for clip in clips:
            ref, x = frames(clip / "L0.mp4"), frames(clip / ladder / f"L{args.level}.mp4")
            n = min(len(ref), len(x))
            ref, x = ref[:n], x[:n]
            luma = ref.mean(-1)
            rows.append([shift(x, ref, np.ones_like(luma, dtype=bool))]
                        + [shift(x, ref, (luma >= lo) & (luma < hi)) for _, lo, hi in TONES])
        m = np.nanmean(np.array(rows), axis=0)
        parts = ["all"] + [t[0] for t in TONES]
        print(f"  {ladder:11s} " + " | ".join(f"{p} {a:+.2f} {b:+.2f}" for p, (a, b) in zip(parts, m)))
    print("generator tints (every tone alike):")
    for name, t in TINTS.items():
        print(f"  {name:11s} " + " | ".join(
            f"level {k} {np.log((1 + s * t[0]) / (1 + s * t[1])):+.2f} {np.log((1 + s * t[2]) / (1 + s * t[1])):+.2f}"
            for k, s in enumerate(STRENGTHS)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
